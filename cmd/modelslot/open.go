package main

import (
	"context"

	"github.com/modelslot/modelslot/internal/cli"
	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/session"
)

func loadModel(g *cli.Options) (*config.Config, *config.Model, error) {
	cfg, err := config.Load(g.Config)
	if err != nil {
		return nil, nil, err
	}
	m, err := cfg.Model(g.Model)
	if err != nil {
		return nil, nil, err
	}
	return cfg, m, nil
}

// openTarget opens the model a command acts on (session.Open: lock, recovery,
// resumed trial).
func openTarget(ctx context.Context, g *cli.Options, op string) (*session.Session, error) {
	cfg, m, err := loadModel(g)
	if err != nil {
		return nil, err
	}
	return session.Open(ctx, cfg, m, op)
}

// openToEndTrial opens the model for rollback, mark-good or mark-bad, which end
// a pending trial themselves instead of resuming it.
func openToEndTrial(ctx context.Context, g *cli.Options, op string) (*session.Session, error) {
	cfg, m, err := loadModel(g)
	if err != nil {
		return nil, err
	}
	return session.OpenToEndTrial(ctx, cfg, m, op)
}

// selectedModels are the models a command for all of them acts on: every
// configured one, or the one --model names.
func selectedModels(g *cli.Options) (*config.Config, []config.Model, error) {
	cfg, err := config.Load(g.Config)
	if err != nil {
		return nil, nil, err
	}
	if g.Model == "" {
		return cfg, cfg.Models, nil
	}
	m, err := cfg.Model(g.Model)
	if err != nil {
		return nil, nil, err
	}
	return cfg, []config.Model{*m}, nil
}

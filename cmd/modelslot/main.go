// Command modelslot updates the machine-learning model of a device through two
// slots and a link, so that an update is atomic, verified and undone by itself
// when the new version misbehaves. This package only parses flags and prints;
// the work is done in slots, verify and internal/update. Every command, its
// flags and its help live in one table (program, below), from which
// internal/cli generates --help, the man page and the shell completions. The
// fleet controller and its clients (fleet, rollout) are modelslot-fleet's:
// a device does not carry a SQL engine, a PostgreSQL driver and a dashboard,
// and modelslot runs modelslot-fleet for them where it is installed.
package main

import "github.com/modelslot/modelslot/internal/cli"

// program is modelslot's command table, in the order the help lists it. Add a
// command with one entry here and its runX in a cmd_*.go file. It is filled
// in init because the commands' entries are variables of their own files.
var program = &cli.Program{
	Name:  "modelslot",
	Title: "atomic, verified A/B updates of machine-learning models, undone when they fail",
	Description: "modelslot updates the machine-learning model on a Linux device so that an update is atomic, " +
		"verified and undone when it fails. A model lives in two directory slots, a and b; a new version is written and " +
		"verified into the slot that is not serving, and one rename(2) of a symlink makes it the serving one. Then the " +
		"inference unit is restarted or reloaded through systemd and the new version's health is confirmed (the unit stays " +
		"up, a probe is answered correctly and fast enough, check commands pass); a failure swaps the link back and brings " +
		"the previous version up again.\n\n" +
		"Every step is saved before it is taken, so a crash or a power cut at any moment is finished or undone by the next " +
		"modelslot command or by the agent at start, and the link always points at a complete, verified slot. " +
		"Installs from a repository or a bundle are signed (ed25519) and checked against trusted_keys; only the chunks the " +
		"device lacks are downloaded.\n\n" +
		"The fleet controller and its clients (`fleet`, `rollout`) are in modelslot-fleet(1), a package of its own, so " +
		"that a device does not carry them; modelslot runs it for those commands where it is installed.\n\n" +
		"The configuration is one TOML file, described in modelslot.toml(5).",
	ManFiles:    manFiles,
	NoFileArgs:  []string{"status", "rollback", "mark-good", "mark-bad", "verify", "agent", "keygen"},
	HelpExample: "install",
}

func init() {
	program.Commands = []cli.Command{
		statusCommand,
		installCommand,
		rollbackCommand,
		recoverCommand,
		markGoodCommand,
		markBadCommand,
		verifyCommand,
		agentCommand,
		cli.Provided("fleet", "modelslot-fleet", "the rollout controller, and the devices it knows"),
		cli.Provided("rollout", "modelslot-fleet", "staged fleet rollouts through the controller"),
		keygenCommand,
		publishCommand,
		bundleCommand,
		pruneCommand,
	}
}

func main() { cli.Main(program) }

// manFiles are the FILES and SEE ALSO sections of modelslot(1).
const manFiles = `.SH FILES
.TP
.I /etc/modelslot/modelslot.toml
the configuration, modelslot.toml(5)
.TP
.I /var/lib/modelslot/
the state root: per model, the slots, state.json, the link, staging and the event outbox
.TP
.I /usr/lib/systemd/system/modelslot\-agent.service
the agent
.TP
.I /usr/lib/systemd/system/modelslot\-rollback@.service
named by an inference unit's OnFailure=modelslot\-rollback@%n.service
.TP
.I /usr/share/doc/modelslot/
the documentation: recovery.md says what modelslot repairs by itself
.SH SEE ALSO
.BR modelslot.toml (5),
.BR modelslot\-fleet (1),
.BR systemd.service (5),
.BR systemd\-analyze (1)
`

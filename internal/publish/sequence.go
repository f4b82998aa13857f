package publish

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelslot/modelslot/verify"
)

// nextSequence returns the highest sequence among the model's published
// manifests plus one (1 for a new model), and refuses a version that exists
// and a next sequence past verify.MaxSequence.
// Signatures are not checked: this is the publisher reading its own repository,
// possibly written with a key that has since been rotated.
func nextSequence(repo, model, version string) (uint64, error) {
	dir := filepath.Join(repo, model, "manifests")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read published manifests: %w", err)
	}
	var highest uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() {
			continue
		}
		if name == version {
			return 0, fmt.Errorf("version %s is already published (%s); versions are immutable, publish a new one",
				version, filepath.Join(dir, e.Name()))
		}
		m, err := readUnverified(filepath.Join(dir, e.Name()))
		if err != nil {
			return 0, fmt.Errorf("%w; fix or move the file aside, the next sequence depends on it", err)
		}
		highest = max(highest, m.Sequence)
	}
	if highest >= verify.MaxSequence {
		return 0, fmt.Errorf("%w: the highest published sequence of %s is %d, the most a manifest may carry (verify.MaxSequence); "+
			"the next one cannot be numbered: publish under a new model name", ErrSequenceExhausted, model, highest)
	}
	return highest + 1, nil
}

// ErrSequenceExhausted means a model's sequences reached verify.MaxSequence:
// publish refuses to wrap to 0, which every device would take for a downgrade.
var ErrSequenceExhausted = errors.New("no sequence left")

func readUnverified(name string) (*verify.Manifest, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	m, err := ReadUnverified(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return m, nil
}

// ReadUnverified returns the manifest inside a manifest envelope without checking
// its signature. Only for the publisher's own files; a device uses
// verify.OpenManifest.
func ReadUnverified(envelope []byte) (*verify.Manifest, error) {
	env, err := verify.ParseEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	if env.PayloadType != verify.PayloadManifest {
		return nil, fmt.Errorf("payload type %q is not a manifest", env.PayloadType)
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return nil, fmt.Errorf("payload is not base64: %w", err)
	}
	return verify.ParseManifest(payload)
}

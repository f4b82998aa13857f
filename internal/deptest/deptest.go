// Package deptest holds the allowed import edges between this project's
// packages, written once (Allowed), and its test fails `make test` on any
// other edge: the layering that docs/architecture.md draws is checked, not
// hoped for. The rules that matter most: the device side never imports the
// publisher's side; health, systemd and report know nothing of slots; loader
// (embedded by inference servers) imports nothing of ours; leaves import
// nothing of ours at all.
package deptest

// Module is this project's module path.
const Module = "github.com/modelslot/modelslot"

// Allowed maps each package (relative to Module) to the project packages it
// may import. A package missing here may import nothing of ours; "*" allows
// any (commands, benchmarks, test drivers at the top).
var Allowed = map[string][]string{
	// Leaves.
	"internal/reason":      nil,
	"internal/crashpoint":  nil,
	"internal/durable":     nil,
	"internal/chunker":     nil,
	"internal/chunkindex":  {"verify"},
	"internal/safetensors": nil,
	"internal/jsonptr":     nil,
	"verify":               nil,
	"loader":               nil, // embedded in inference servers: nothing of ours
	"internal/netconf":     nil,

	// The store and the step packages.
	"slots":           {"verify", "internal/durable", "internal/crashpoint", "internal/reason"},
	"internal/report": {"internal/durable", "internal/crashpoint", "internal/netconf"},
	"internal/health": {"verify", "internal/reason", "internal/jsonptr"},
	"systemd":         {"internal/reason"}, // the unit adapter (systemd.Unit) included: it knows nothing of slots
	"internal/update": {"slots", "verify", "internal/report", "internal/reason", "internal/crashpoint"},
	"internal/config": {"verify", "internal/health", "internal/netconf"}, // probe_version is checked by health's own parser

	// The device side of a repository, and the publisher's side.
	"internal/bundle":  {"verify", "internal/chunkindex"},
	"internal/fetch":   {"verify", "internal/bundle", "internal/durable", "slots", "internal/report", "internal/chunkindex"},
	"internal/publish": {"verify", "internal/chunker", "internal/durable", "internal/bundle", "internal/chunkindex", "internal/crashpoint"},

	// Wiring, the daemon.
	"internal/session": {"internal/config", "internal/fetch", "internal/health", "internal/report", "internal/netconf",
		"internal/update", "internal/reason", "slots", "systemd", "verify"},
	"internal/agent": {"internal/config", "internal/session", "internal/durable", "internal/report", "internal/update",
		"internal/reason", "slots", "verify", "internal/rollout", "internal/netconf"},
	// Fleet rollouts: the document both sides read, and the controller (which
	// no device-side package imports; internal/agent's deps test checks it).
	"internal/rollout":     {"verify"},
	"internal/fleet/store": {"internal/report", "internal/rollout", "internal/netconf"},
	"internal/fleet": {"internal/config", "internal/durable", "internal/fleet/store", "internal/netconf",
		"internal/report", "internal/rollout", "verify"},
	// The controller's web page: reads through the controller, changes nothing itself.
	"internal/fleet/dashboard": {"internal/fleet", "internal/fleet/store", "internal/rollout", "internal/reason", "internal/report"},
	// The fleet simulator: real agents in one process (fleet simulate, the
	// scale test); it drives the device side and is imported only by cmd.
	"internal/simulate": {"internal/agent", "internal/config", "internal/session", "internal/report", "slots", "internal/reason"},

	// The command-line plumbing both binaries share: the table, help, man
	// page, completions, and the exit codes of the errors it maps.
	"internal/cli": {"internal/config", "internal/fetch", "internal/reason", "internal/update", "slots", "verify"},

	// The demo's model and server.
	"internal/demomodel":         {"internal/safetensors"},
	"internal/demomodel/cmd/gen": {"internal/demomodel"},
	"cmd/modelslot-demo":         {"loader", "internal/demomodel"},

	// Test harnesses.
	"internal/testutil":                nil,
	"internal/mqtttest":                nil,
	"internal/pgtest":                  nil,
	"internal/nginxtest":               {"internal/testutil"},
	"internal/browsertest":             {"internal/testutil"},
	"internal/systemdtest":             {"internal/testutil"},
	"internal/systemdtest/testservice": nil,
	"internal/demobench":               {"*"},
	"internal/deptest":                 nil,

	// The top: commands, benchmarks, test drivers, integrations.
	"cmd/modelslot":        {"*"},
	"cmd/modelslot-fleet":  {"*"},
	"bench/install":        {"*"},
	"test/powercut/check":  {"*"},
	"test/powercut/driver": {"*"},
	"integrations/python":  {"*"},
}

// DeviceSide and PublisherSide must never meet in that direction: a device
// never links the publisher's code (a smaller binary, and a compromised
// device holds no publishing logic).
var (
	DeviceSide    = []string{"slots", "internal/fetch", "internal/bundle", "internal/update", "internal/health", "internal/session", "internal/agent", "systemd", "loader"}
	PublisherSide = []string{"internal/publish", "internal/chunker"}
)

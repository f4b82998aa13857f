// Command modelslot-fleet is the fleet side of modelslot: the rollout
// controller (fleet serve, with its database and dashboard), its clients
// (fleet devices, rollout) and the fleet simulator. It is a binary of its own
// so that the device binary, modelslot, links no SQL engine, PostgreSQL driver
// or dashboard; `modelslot fleet …` and `modelslot rollout …` exec it with
// the same arguments. The command plumbing is internal/cli's, as modelslot's.
package main

import "github.com/modelslot/modelslot/internal/cli"

// program is modelslot-fleet's command table.
var program = &cli.Program{
	Name:  "modelslot-fleet",
	Title: "the modelslot fleet controller: staged, self-halting rollouts of models to devices",
	Description: "modelslot-fleet runs the rollout controller of a fleet of devices that run the modelslot agent " +
		"(`fleet serve`), lists the devices it knows (`fleet devices`), starts and steers staged rollouts through its API " +
		"(`rollout`), and simulates a fleet of real agents for scale tests (`fleet simulate`). " +
		"`modelslot fleet …` and `modelslot rollout …` run this program with the same arguments.\n\n" +
		"The controller's configuration is the [fleet] and [platform] tables of a modelslot TOML file, " +
		"modelslot.toml(5); docs/fleet.md describes the rollouts.",
	ManFiles:    manFiles,
	HelpExample: "rollout",
}

func init() {
	program.Commands = []cli.Command{fleetCommand, rolloutCommand}
}

func main() { cli.Main(program) }

// manFiles are the FILES and SEE ALSO sections of modelslot-fleet(1).
const manFiles = `.SH FILES
.TP
.I /etc/modelslot/fleet.toml
the controller's configuration, modelslot.toml(5)
.TP
.I /var/lib/modelslot\-fleet/
the controller's state: its SQLite database by default
.TP
.I /usr/lib/systemd/system/modelslot\-fleet.service
the controller
.TP
.I /usr/share/doc/modelslot\-fleet/
the documentation: fleet.md, scale.md
.SH SEE ALSO
.BR modelslot (1),
.BR modelslot.toml (5)
`

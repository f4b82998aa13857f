package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/modelslot/modelslot/internal/mqtttest"
	"github.com/modelslot/modelslot/internal/pgtest"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/verify"
)

// TestFleetBench measures `modelslot fleet serve` (make bench): 1,000 devices
// publish events through mosquitto as fast as QoS 1 allows, and the controller
// records them into SQLite, then into PostgreSQL (fsync on, as in
// production). It prints events per second ingested, the controller's CPU time
// per 1,000 events and its RSS with 1,000 devices known. It asserts only that
// every event arrives. Run: MODELSLOT_FLEET_BENCH=1 go test -run '^TestFleetBench$' -v ./cmd/modelslot/
func TestFleetBench(t *testing.T) {
	if os.Getenv("MODELSLOT_FLEET_BENCH") == "" {
		t.Skip("a benchmark: set MODELSLOT_FLEET_BENCH=1 (make bench)")
	}
	devices, perDevice := envInt("FLEET_DEVICES", 1000), envInt("FLEET_EVENTS", 5)
	dbs := []string{"sqlite", "postgres"}
	if only := os.Getenv("FLEET_DB"); only != "" {
		dbs = []string{only}
	}
	for _, db := range dbs {
		t.Run(db, func(t *testing.T) {
			url := ""
			if db == "postgres" {
				url = pgtest.Start(t, false).URL()
			}
			r := benchIngest(t, url, devices, perDevice)
			t.Logf("%s: %d devices × %d events: %.0f events/s ingested, controller CPU %.2f s per 1,000 events, RSS %.1f MiB",
				db, devices, perDevice, r.rate, r.cpuPer1000, r.rssMiB)
			fmt.Printf("fleet bench %s: %.0f events/s, CPU %.2f s/1000 events, RSS %.1f MiB with %d devices\n",
				db, r.rate, r.cpuPer1000, r.rssMiB, devices)
		})
	}
}

type benchResult struct{ rate, cpuPer1000, rssMiB float64 }

func benchIngest(t *testing.T, db string, devices, perDevice int) benchResult {
	// The broker settings docs/fleet.md recommends for a controller's
	// session: mosquitto's default queue (1,000 messages) drops QoS 1 events
	// past it while a burst waits for the controller.
	b := mqtttest.New(t)
	b.Configure("max_queued_messages 0\nmax_inflight_messages 200\n")
	b.Start()
	f := &testFleet{t: t, broker: b, secrets: t.TempDir()}
	k, _ := verify.GenerateKey(nil)
	f.keyPub = t.TempDir() + "/rollout"
	if err := verify.WriteKeyPair(f.keyPub, k); err != nil {
		t.Fatal(err)
	}
	f.keyPub += ".pub"
	conf, url := f.controllerConfig(db)
	c := startController(t, conf, url)
	c.waitReady(30 * time.Second)
	cpu0, _ := procStats(t, c.cmd.Process.Pid)
	total := devices * perDevice
	start := time.Now()
	publishEvents(t, b, devices, perDevice)
	deadline := time.Now().Add(time.Duration(envInt("FLEET_WAIT_SECONDS", 300)) * time.Second)
	for n := ingested(t, c.url); n < total; n = ingested(t, c.url) {
		if time.Now().After(deadline) {
			log := c.logText()
			t.Fatalf("%d of %d events ingested; controller log (end):\n%s", n, total, log[max(0, len(log)-3000):])
		}
		time.Sleep(100 * time.Millisecond)
	}
	elapsed := time.Since(start)
	cpu1, rss := procStats(t, c.cmd.Process.Pid)
	return benchResult{rate: float64(total) / elapsed.Seconds(), cpuPer1000: (cpu1 - cpu0) / float64(total) * 1000, rssMiB: rss}
}

// publishEvents plays the fleet: 20 connections, each publishing for its share
// of the devices, QoS 1, waiting for every PUBACK as an agent does.
func publishEvents(t *testing.T, b *mqtttest.Broker, devices, perDevice int) {
	const conns = 20
	var wg sync.WaitGroup
	for c := range conns {
		cl := mqtttest.Connect(t, b, fmt.Sprint("fleet-", c))
		wg.Go(func() {
			for d := c; d < devices; d += conns {
				id := fmt.Sprintf("bench-%04d", d)
				for i := range perDevice {
					ev := report.Event{Event: report.EventType, DeviceID: id, Model: "demo", Status: report.StatusInstalling,
						EventID: fmt.Sprintf("%s-%d", id, i), Sequence: uint64(i + 1), CurrentVersion: "v1", TargetVersion: "v2",
						Timestamp: time.Now().UTC(), Logs: []string{}}
					body, _ := json.Marshal(ev)
					publishWait(cl, "modelslot/"+id+"/events", body)
				}
			}
		})
	}
	wg.Wait()
}

func publishWait(c mqtt.Client, topic string, body []byte) {
	c.Publish(topic, 1, false, body).WaitTimeout(30 * time.Second)
}

func ingested(t *testing.T, base string) int {
	for _, line := range strings.Split(scrapeURL(t, base), "\n") {
		if v, ok := strings.CutPrefix(line, "modelslot_fleet_events_ingested_total "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return 0
}

// procStats reads a process's CPU seconds (user + system) and RSS in MiB.
func procStats(t *testing.T, pid int) (float64, float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	var rss float64
	s, _ := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	defer s.Close()
	sc := bufio.NewScanner(s)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			rss = kb / 1024
		}
	}
	return (utime + stime) / 100, rss // clock ticks: 100 per second on Linux
}

func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil && v > 0 {
		return v
	}
	return def
}

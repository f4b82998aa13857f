package simulate

import (
	"fmt"
	"sync"
	"time"
)

// measurement is one phase of the scale test: from a rollout's creation until
// the fleet settled on its outcome.
type measurement struct {
	s          *stand
	start      time.Time
	procs      map[string][]int // name → pids of the process trees measured
	cpu0       map[string]float64
	peak       map[string]float64 // RSS MiB
	brokerIn0  int64
	brokerPub0 int64
	recorded0  int
	mu         sync.Mutex
	stop       chan struct{}
	done       chan struct{}

	// Results, set by end.
	elapsed                      time.Duration // until every device settled and every event was recorded
	decided                      time.Duration // until the controller completed or halted the rollout
	cpu                          map[string]float64
	brokerIn, brokerPub, records int
	dbSize                       int64
	lost, produced               int
}

// measure starts a phase: CPU counters now, RSS sampled every second.
func (s *stand) measure(f *Fleet) *measurement {
	_, total, _ := s.recorded()
	m := &measurement{s: s, start: time.Now(), brokerIn0: s.brokerIn.Load(), brokerPub0: s.brokerPub.Load(), recorded0: total,
		procs: map[string][]int{"controller": {s.ctl.cmd.Process.Pid}, "mosquitto": {s.broker.Pid()}, "postgres": {s.pg.Pid()}, "nginx": {s.web.Pid()}},
		cpu0:  map[string]float64{}, peak: map[string]float64{}, stop: make(chan struct{}), done: make(chan struct{})}
	for _, sim := range s.sims {
		m.procs["simulator"] = append(m.procs["simulator"], sim.cmd.Process.Pid)
	}
	for name, pids := range m.procs {
		m.cpu0[name] = treesOf(pids).cpu
	}
	go m.sample()
	return m
}

func (m *measurement) sample() {
	defer close(m.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		m.mu.Lock()
		for name, pids := range m.procs {
			m.peak[name] = max(m.peak[name], treesOf(pids).rss)
		}
		m.mu.Unlock()
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
	}
}

// end closes the phase: CPU used, messages and events counted, and lost
// events — per device, events it queued that the database does not hold.
func (m *measurement) end(f *Fleet) *measurement {
	m.elapsed = time.Since(m.start)
	close(m.stop)
	<-m.done
	m.cpu = map[string]float64{}
	for name, pids := range m.procs {
		m.cpu[name] = treesOf(pids).cpu - m.cpu0[name]
	}
	time.Sleep(1100 * time.Millisecond) // one more $SYS interval
	m.brokerIn = int(m.s.brokerIn.Load() - m.brokerIn0)
	m.brokerPub = int(m.s.brokerPub.Load() - m.brokerPub0)
	per, total, size := m.s.recorded()
	m.records, m.dbSize = total-m.recorded0, size
	for _, d := range f.Snapshot().Devices {
		m.produced += d.Produced
		if got := per[d.ID]; got < d.Produced {
			m.lost += d.Produced - got
		}
	}
	return m
}

func (m *measurement) print(phase, outcome string, devices int) {
	sec := m.elapsed.Seconds()
	fmt.Printf("fleet bench %s, %d devices: rollout %s after %s, fleet settled after %s; events through the broker into the database %d (%.0f/s); lost events %d of %d\n",
		phase, devices, outcome, m.decided.Round(100*time.Millisecond), m.elapsed.Round(100*time.Millisecond),
		m.records, float64(m.records)/sec, m.lost, m.produced)
	fmt.Printf("fleet bench %s, %d devices: MQTT packets into the broker %d (%.0f/s; $SYS/broker/messages/received: statuses, PUBACKs and pings too), $SYS publish/messages/received %d\n",
		phase, devices, m.brokerIn, float64(m.brokerIn)/sec, m.brokerPub)
	for _, name := range []string{"controller", "mosquitto", "postgres", "nginx", "simulator"} {
		fmt.Printf("fleet bench %s, %d devices: %-10s CPU %6.1f s (%3.0f%% of one core), peak RSS %6.1f MiB\n",
			phase, devices, name, m.cpu[name], 100*m.cpu[name]/sec, m.peak[name])
	}
	fmt.Printf("fleet bench %s, %d devices: database size %.1f MiB\n", phase, devices, float64(m.dbSize)/(1<<20))
}

// treesOf sums procTree over pids.
func treesOf(pids []int) proc {
	var p proc
	for _, pid := range pids {
		q := procTree(pid)
		p.cpu += q.cpu
		p.rss += q.rss
	}
	return p
}

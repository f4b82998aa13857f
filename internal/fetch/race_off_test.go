//go:build !race

package fetch

// raceEnabled: the race detector multiplies memory, so the RSS bounds do not apply.
const raceEnabled = false

package chunker

// gear maps each byte to a pseudo-random 64-bit value. It is generated from a
// fixed seed with splitmix64 rather than drawn at random: changing it would
// change every cut point, and with them every chunk address in every repository.
var gear = func() (t [256]uint64) {
	x := uint64(0x6d6f64656c736c6f) // "modelslo"
	for i := range t {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		t[i] = z ^ z>>31
	}
	return t
}()

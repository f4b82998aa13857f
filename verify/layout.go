package verify

import "path"

// The repository layout (DESIGN.md § Artifact repository, docs/repository.md).
// Paths are slash-separated, so they serve as URL paths and file paths alike.

// ManifestPath is where a version's manifest lives, relative to <repo>/<model>/.
func ManifestPath(version string) string { return path.Join("manifests", version+".json") }

// ChannelPath is where a channel pointer lives, relative to <repo>/<model>/.
func ChannelPath(channel string) string { return path.Join("channels", channel+".json") }

// ChunkPath is where a chunk is stored, relative to <repo>/: sharded by the first
// two hex digits so no directory grows past a few thousand entries. sum must be a
// checked digest (CheckDigest).
func ChunkPath(sum string) string { return path.Join("chunks", sum[:2], sum+".zst") }

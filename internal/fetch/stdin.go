package fetch

import (
	"context"
	"io"
	"os"
	"syscall"
)

// openBundleFile opens a bundle path without blocking in open(2): a FIFO
// with no writer would otherwise hold the command where no signal ends it.
// A pipe opened this way is read through Go's poller, so it still waits for
// data, but in a read that cancellableReader can abandon.
func openBundleFile(name string) (*os.File, error) {
	return os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

// cancelableReader makes reads of r end when ctx is done, for a stream whose
// read may block with no end in sight: stdin that stops mid-bundle. A plain
// read(2) on a blocking pipe or terminal is not interrupted by Go's signal
// handling, so the read runs in a goroutine feeding a pipe, and cancellation
// closes the pipe: the install's next read returns the context's cause at
// once. The goroutine stays blocked in its read until the process exits,
// which the command line does right after. (Setting O_NONBLOCK on fd 0 to use
// deadlines would change the file description the parent shell shares.)
//
// stop ends the watch on ctx and the pipe; call it when the stream is no
// longer read.
func cancelableReader(ctx context.Context, r io.Reader) (rd io.Reader, stop func()) {
	pr, pw := io.Pipe()
	go func() {
		_, err := io.Copy(pw, r)
		pw.CloseWithError(err) // nil: the reader sees io.EOF
	}()
	stopWatch := context.AfterFunc(ctx, func() { pr.CloseWithError(context.Cause(ctx)) })
	return pr, func() {
		stopWatch()
		pr.Close() // a writer blocked on data nobody reads gets an error and ends
	}
}

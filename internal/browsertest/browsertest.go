// Package browsertest drives a real headless Chromium (Debian's chromium
// package) over the DevTools protocol for tests of the fleet dashboard: start
// it, log in with the API token, run bounded steps, read the page, take a
// screenshot. No browser is downloaded at run time.
package browsertest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/modelslot/modelslot/internal/testutil"
)

// Start launches the browser for the test (it ends with it). JavaScript
// dialogs (the confirm before a rollback) are accepted, as an operator would.
func Start(t testing.TB) context.Context {
	t.Helper()
	exe := testutil.NeedTool(t, "chromium", "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.Headless,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 1400))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser; no timeout on this first call
		t.Fatalf("start chromium: %v", err)
	}
	go func() {
		for _, err := range chromedp.Events(ctx, page.JavascriptDialogOpening) {
			if err != nil {
				return
			}
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	return ctx
}

// Do runs browser steps, the batch bounded by a minute so a missing element
// fails the test instead of hanging it.
func Do(t testing.TB, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v\nthe page:\n%s", what, err, PageText(ctx))
	}
}

// Login opens the dashboard at url and enters the API token in its form;
// the caller then waits for what it expects to see.
func Login(t testing.TB, ctx context.Context, url, token string) {
	t.Helper()
	Do(t, ctx, "log in to the dashboard",
		chromedp.Navigate(url+"/"), // / leads to /ui/
		chromedp.WaitVisible(chromedp.CSS(`#login`)),
		chromedp.SendKeys(chromedp.CSS(`#login input[name="token"]`), token),
		chromedp.Click(chromedp.CSS(`#login button[type="submit"]`)))
}

// PageText is what the browser shows, for a failure's message.
func PageText(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	html, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.documentElement.outerHTML`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return html
}

// Screenshot writes the whole page as a PNG to path and logs where.
func Screenshot(t testing.TB, ctx context.Context, path string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

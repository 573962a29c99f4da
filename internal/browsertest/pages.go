// Package browsertest drives a real headless chromium for the web
// console's tests: it starts the browser with a fresh profile and the
// flags that keep it off the network, opens tabs that record every
// console error, uncaught exception and browser-log error (a test fails
// on any), and takes screenshots.
//
// Without chromium at [ChromiumPath] a test fails when the environment
// variable CI is set, and is skipped with the reason otherwise.
package browsertest

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// ChromiumPath is where Debian installs chromium.
const ChromiumPath = "/usr/bin/chromium"

// StepTimeout bounds each call of [Tab.Do] and [Eval]: long enough for a
// loaded machine, short enough that a missing element fails the test.
const StepTimeout = 60 * time.Second

// Browser is one headless chromium with a fresh profile.
type Browser struct {
	ctx context.Context
}

// Start starts chromium for t and stops it when t ends.
func Start(t testing.TB) *Browser {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is needed for the browser tests and is not at %s (apt-get install -y chromium): %v", ChromiumPath, err)
		}
		t.Skipf("chromium is not at %s (apt-get install -y chromium): %v", ChromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(ChromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	// Start the browser now, so that a failure to start is reported here.
	if err := chromedp.Do(bctx); err != nil {
		bcancel()
		acancel()
		t.Fatalf("starting chromium: %v", err)
	}
	t.Cleanup(func() {
		bcancel()
		acancel()
	})
	return &Browser{ctx: bctx}
}

// Tab is one tab of the browser. It records the console's errors from
// the moment it opens.
type Tab struct {
	t   testing.TB
	Ctx context.Context

	mu   sync.Mutex
	errs []string
	done chan struct{}
}

// NewTab opens a tab with a viewport of width × height CSS pixels and the
// light colour scheme; it is closed when t ends.
func (b *Browser) NewTab(t testing.TB, width, height int64) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	p := &Tab{t: t, Ctx: ctx, done: make(chan struct{})}
	if err := chromedp.Do(ctx); err != nil { // create the target
		cancel()
		t.Fatalf("opening a tab: %v", err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		defer close(p.done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				p.mu.Lock()
				p.errs = append(p.errs, m.String()+at(m))
				p.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
	p.Do(chromedp.EmulateViewport(width, height))
	p.SetColorScheme("light")
	return p
}

func at(m chromedp.ConsoleMessage) string {
	if m.URL == "" {
		return ""
	}
	return " (" + m.URL + ")"
}

// Do runs the steps, failing the test on an error.
func (p *Tab) Do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.Ctx, StepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("browser: %v (console errors so far: %q)", err, p.Errors())
	}
}

// Eval evaluates a JavaScript expression in the tab (awaiting a promise)
// and returns its value, failing the test on an error.
func Eval[T any](p *Tab, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.Ctx, StepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("browser: evaluating %q: %v", expr, err)
	}
	return v
}

// SetColorScheme emulates prefers-color-scheme: "light" or "dark".
func (p *Tab) SetColorScheme(scheme string) {
	p.t.Helper()
	p.Do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	}))
}

// Screenshot captures the viewport as PNG.
func (p *Tab) Screenshot() []byte {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.Ctx, StepTimeout)
	defer cancel()
	b, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("browser: screenshot: %v", err)
	}
	return b
}

// Errors are the console errors and uncaught exceptions recorded so far.
func (p *Tab) Errors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errs...)
}

// NoErrors fails the test for each console error or exception recorded.
func (p *Tab) NoErrors() {
	p.t.Helper()
	for _, e := range p.Errors() {
		p.t.Errorf("console error: %s", e)
	}
}

// Package browsertest drives a real headless chromium for the web
// console's tests and for `nexus bench console`: it starts the browser
// with a fresh profile and the flags that keep it off the network, opens
// tabs that record every console error, uncaught exception and
// browser-log error (a test fails on any), and takes screenshots.
//
// Without chromium at [ChromiumPath] a test fails when the environment
// variable CI is set, and is skipped with the reason otherwise.
package browsertest

import (
	"context"
	"fmt"
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
	Need(t)
	b, stop, err := Launch(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return b
}

// Need fails t when chromium is not at [ChromiumPath] and the
// environment variable CI is set, and skips it otherwise: for a test
// that starts chromium through another program.
func Need(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is needed for the browser tests and is not at %s (apt-get install -y chromium): %v", ChromiumPath, err)
		}
		t.Skipf("chromium is not at %s (apt-get install -y chromium): %v", ChromiumPath, err)
	}
}

// Launch starts chromium with a fresh profile in the directory profile,
// outside a test (`nexus bench console`); stop ends it. extra options
// are added to the usual ones.
func Launch(profile string, extra ...chromedp.ExecAllocatorOption) (b *Browser, stop func(), err error) {
	if _, err := os.Stat(ChromiumPath); err != nil {
		return nil, nil, fmt.Errorf("chromium is not at %s (apt-get install -y chromium): %w", ChromiumPath, err)
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
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 800),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), append(opts, extra...)...)
	bctx, bcancel := chromedp.NewContext(actx)
	// Start the browser now, so that a failure to start is reported here.
	if err := chromedp.Do(bctx); err != nil {
		bcancel()
		acancel()
		return nil, nil, fmt.Errorf("starting chromium: %w", err)
	}
	return &Browser{ctx: bctx}, func() {
		bcancel()
		acancel()
	}, nil
}

// Tab is one tab of the browser. It records the console's errors from
// the moment it opens.
type Tab struct {
	t   testing.TB // nil for a tab of [Browser.Open]
	Ctx context.Context

	mu   sync.Mutex
	errs []string
	done chan struct{}
}

// NewTab opens a tab with a viewport of width × height CSS pixels and the
// light colour scheme; it is closed when t ends.
func (b *Browser) NewTab(t testing.TB, width, height int64) *Tab {
	t.Helper()
	p, closeTab, err := b.Open(width, height)
	if err != nil {
		t.Fatal(err)
	}
	p.t = t
	t.Cleanup(closeTab)
	return p
}

// Open opens a tab with a viewport of width × height CSS pixels and the
// light colour scheme, outside a test; closeTab closes it. Its steps run
// through chromedp on [Tab.Ctx]; [Tab.Errors] holds what it recorded.
func (b *Browser) Open(width, height int64) (p *Tab, closeTab func(), err error) {
	ctx, cancel := chromedp.NewContext(b.ctx)
	p = &Tab{Ctx: ctx, done: make(chan struct{})}
	if err := chromedp.Do(ctx); err != nil { // create the target
		cancel()
		return nil, nil, fmt.Errorf("opening a tab: %w", err)
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
	closeTab = func() {
		cancel()
		<-p.done
	}
	sctx, scancel := context.WithTimeout(ctx, StepTimeout)
	defer scancel()
	if err := chromedp.Do(sctx, chromedp.EmulateViewport(width, height), colorScheme("light")); err != nil {
		closeTab()
		return nil, nil, fmt.Errorf("setting up a tab: %w", err)
	}
	return p, closeTab, nil
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
	p.Do(colorScheme(scheme))
}

func colorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	})
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

// WaitTrue waits until the JavaScript expression is true in the tab,
// checking every 100 ms, and fails the test after [StepTimeout] with
// what.
func (p *Tab) WaitTrue(expr, what string) {
	p.t.Helper()
	deadline := time.Now().Add(StepTimeout)
	for {
		ctx, cancel := context.WithTimeout(p.Ctx, StepTimeout)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("Boolean("+expr+")"))
		cancel()
		if err != nil {
			p.t.Fatalf("browser: waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("browser: %s did not happen within %v (console errors: %q)", what, StepTimeout, p.Errors())
		}
		select {
		case <-p.Ctx.Done():
			p.t.Fatalf("browser: waiting for %s: %v", what, p.Ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

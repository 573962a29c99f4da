package nexus_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
)

func TestRedactor_Redact(t *testing.T) {
	r := nexus.NewRedactor("tok-0123456789", "  sk-live-abcdef  ", "abc", "")
	r.Add("sk-live-abcdef-longer", `quo"te\key`)
	got := r.Redact(`token tok-0123456789, key sk-live-abcdef-longer and sk-live-abcdef, abc, json "quo\"te\\key" raw quo"te\key`)
	want := `token [redacted], key [redacted] and [redacted], abc, json "[redacted]" raw [redacted]`
	if got != want {
		t.Fatalf("Redact:\n got %s\nwant %s", got, want)
	}
}

func TestRedactor_RedactBytes(t *testing.T) {
	secret := `se"cret-1234`
	r := nexus.NewRedactor(secret)
	doc, _ := json.Marshal(map[string]string{"last_error": "stderr: " + secret})
	got := r.RedactBytes(doc)
	if string(got) != `{"last_error":"stderr: [redacted]"}` {
		t.Fatalf("RedactBytes = %s", got)
	}
	clean := []byte("nothing to hide")
	if out := r.RedactBytes(clean); &out[0] != &clean[0] {
		t.Fatal("RedactBytes copied text that held no secret")
	}
}

func TestRedactor_Nil(t *testing.T) {
	var r *nexus.Redactor
	r.Add("ignored-secret")
	if got := r.Redact("ignored-secret"); got != "ignored-secret" {
		t.Fatalf("nil Redactor changed text: %q", got)
	}
}

func TestRedactor_Handler(t *testing.T) {
	const secret = "NEXUS-TOKEN-77aa11"
	r := nexus.NewRedactor(secret)
	var buf bytes.Buffer
	log := slog.New(r.Handler(slog.NewTextHandler(&buf, nil)))
	log = log.With("ctx", "with "+secret).WithGroup("g")
	log.Error("failed with "+secret, "err", errors.New("stderr: "+secret), "n", 3,
		slog.Group("inner", "msg", secret))
	out := buf.String()
	if strings.Contains(out, secret) {
		t.Fatalf("the log holds the secret: %s", out)
	}
	for _, want := range []string{`msg="failed with [redacted]"`, `ctx="with [redacted]"`, `g.err="stderr: [redacted]"`, "g.n=3", "g.inner.msg=[redacted]"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s: %s", want, out)
		}
	}
}

# The targets CI runs; `make check` is what .ci/run calls.
.PHONY: check test vet staticcheck fmt lint build fuzz bench report examples

check: fmt vet staticcheck lint examples test

fmt:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

vet:
	go vet ./...

staticcheck:
	go tool staticcheck ./...

# The OpenAPI document under a third-party linter: Redocly's recommended
# rules, as httpapi/redocly.yaml adjusts them. Needs Node.js (20.19 or later).
REDOCLY ?= npx --yes @redocly/cli@2.77.0
lint:
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true $(REDOCLY) lint --config httpapi/redocly.yaml httpapi/openapi.json

# go test's exit status, its usual output, then a line per skipped test
# and "N passed, N failed, N skipped" (internal/testsummary).
PKGS ?= ./...
test: SHELL := /bin/bash
test:
	set -o pipefail; go test -race -count=1 -timeout 20m -json $(PKGS) | go run ./internal/testsummary

# examples builds and runs the programs under examples/ (a node embedded in Go).
examples:
	go run ./examples/embed

build:
	go build -o nexus ./cmd/nexus

FUZZTIME ?= 30s
fuzz:
	go test -run '^$$' -fuzz FuzzParseID -fuzztime $(FUZZTIME) .
	go test -run '^$$' -fuzz FuzzCanonicalMetadata -fuzztime $(FUZZTIME) .
	go test -run '^$$' -fuzz FuzzParseIndex -fuzztime $(FUZZTIME) ./gitstore/
	go test -run '^$$' -fuzz FuzzDecodeDraft -fuzztime $(FUZZTIME) ./httpapi/
	go test -run '^$$' -fuzz FuzzDecodeSearch -fuzztime $(FUZZTIME) ./httpapi/
	go test -run '^$$' -fuzz FuzzEventsRequest -fuzztime $(FUZZTIME) ./httpapi/
	go test -run '^$$' -fuzz FuzzReadSSE -fuzztime $(FUZZTIME) ./httpapi/
	go test -run '^$$' -fuzz FuzzDecodeSessionRequest -fuzztime $(FUZZTIME) ./httpapi/
	go test -run '^$$' -fuzz FuzzParsePosition -fuzztime $(FUZZTIME) ./events/
	go test -run '^$$' -fuzz FuzzDecodeDocs -fuzztime $(FUZZTIME) ./search/
	go test -run '^$$' -fuzz FuzzDecodeSegment -fuzztime $(FUZZTIME) ./search/
	go test -run '^$$' -fuzz FuzzParseQuery -fuzztime $(FUZZTIME) ./search/
	go test -run '^$$' -fuzz FuzzRead -fuzztime $(FUZZTIME) ./keyword/
	go test -run '^$$' -fuzz FuzzAnalyze -fuzztime $(FUZZTIME) ./keyword/
	go test -run '^$$' -fuzz FuzzRead -fuzztime $(FUZZTIME) ./vector/
	go test -run '^$$' -fuzz FuzzDecodeResponse -fuzztime $(FUZZTIME) ./embed/
	go test -run '^$$' -fuzz FuzzErrorBodyMessage -fuzztime $(FUZZTIME) ./embed/
	go test -run '^$$' -fuzz FuzzUnmarshalCooc -fuzztime $(FUZZTIME) ./embed/
	go test -run '^$$' -fuzz FuzzDecodeModel -fuzztime $(FUZZTIME) ./node/
	go test -run '^$$' -fuzz FuzzDecodeOpenAI -fuzztime $(FUZZTIME) ./agent/
	go test -run '^$$' -fuzz FuzzDecodeAnthropic -fuzztime $(FUZZTIME) ./agent/
	go test -run '^$$' -fuzz FuzzDecodeCommand -fuzztime $(FUZZTIME) ./agent/
	go test -run '^$$' -fuzz FuzzErrorBodyMessage -fuzztime $(FUZZTIME) ./agent/
	go test -run '^$$' -fuzz FuzzParseSecrets -fuzztime $(FUZZTIME) ./agent/
	go test -run '^$$' -fuzz FuzzParseRetryAfter -fuzztime $(FUZZTIME) ./internal/retry/
	go test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./config/
	go test -run '^$$' -fuzz FuzzParseFile -fuzztime $(FUZZTIME) ./auth/
	go test -run '^$$' -fuzz FuzzSet -fuzztime $(FUZZTIME) ./auth/
	go test -run '^$$' -fuzz FuzzPrincipalFromClaims -fuzztime $(FUZZTIME) ./auth/

bench:
	go test -run '^$$' -bench . -benchtime 3s ./gitstore/

report: build
	./nexus bench report

# The targets CI runs; `make check` is what .ci/run calls.
.PHONY: check test vet staticcheck fmt build fuzz bench report

check: fmt vet staticcheck test

fmt:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

vet:
	go vet ./...

staticcheck:
	go tool staticcheck ./...

test:
	go test -race -count=1 -timeout 20m ./...

build:
	go build -o nexus ./cmd/nexus

fuzz:
	go test -run '^$$' -fuzz FuzzParseID -fuzztime 30s .
	go test -run '^$$' -fuzz FuzzCanonicalMetadata -fuzztime 30s .

bench:
	go test -run '^$$' -bench . -benchtime 3s ./gitstore/

report: build
	./nexus bench report

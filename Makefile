# hasp: the two commands are `make run` and `make test`.
GO       ?= go
BIN      ?= bin
FUZZTIME ?= 10s

.PHONY: all build run test test-go lint deps check-tools fuzz bench clean

all: build

## build: the hasp binary in bin/
build:
	$(GO) build -o $(BIN)/hasp ./cmd/hasp

## run: hasp serve on the embedded etcd (data in ./.hasp-data), on 127.0.0.1:8080
run: build
	$(BIN)/hasp serve $(ARGS)

## test: install what tests need, lint, run every test and a short fuzz
test: deps check-tools lint test-go
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./api
	$(GO) test -run '^$$' -fuzz '^FuzzHandler$$' -fuzztime $(FUZZTIME) ./api

test-go:
	$(GO) test -count=1 -race -timeout 15m ./...

## lint: gofmt, go vet, go mod tidy must be clean
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff

## deps: download Go modules (npm emulators join here as providers land)
deps:
	$(GO) mod download

check-tools:
	@scripts/check-tools.sh

## fuzz: the decoders and the handler, longer (FUZZTIME=5m by default here)
fuzz: FUZZTIME = 5m
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./api
	$(GO) test -run '^$$' -fuzz '^FuzzHandler$$' -fuzztime $(FUZZTIME) ./api

## bench: the BENCHMARKS.md table, every ratio from one run
bench:
	HASP_BENCH=1 $(GO) test -count=1 -run '^TestReport$$' -v ./bench/

clean:
	rm -rf $(BIN)

# hasp: the two commands are `make run` and `make test`.
SHELL    := /bin/bash
GO       ?= go
BIN      ?= bin
FUZZTIME ?= 10s
# The Lambda Runtime Interface Emulator, built from its Go module (tests only).
RIE_VERSION ?= v0.0.0-20261030222936-bef5c4ba774d
# Lambda architecture: arm64 (default) or amd64.
LAMBDA_ARCH ?= arm64
# LAMBDA_TRACING=1 builds the OpenTelemetry SDK and OTLP/HTTP exporter into
# the Lambda (about twice the size); without it the function has no traces.
LAMBDA_TRACING ?=
comma := ,
LAMBDA_TAGS := lambda.norpc,hasp_lambda$(if $(LAMBDA_TRACING),$(comma)hasp_tracing)
LAMBDA_MAX_BYTES := 10485760
# Azure Functions app folder and the custom handler's architecture (Linux plans run amd64).
AZURE_DIST ?= dist/azure
AZURE_ARCH ?= amd64
# The container image (make image): name, version (the tag the Kubernetes
# manifests in infra/k8s name; a test keeps them equal), platforms.
IMAGE    ?= ghcr.io/hasplock/hasp
VERSION  ?= 0.1.0
IMAGE_PLATFORMS ?= linux/amd64 linux/arm64
IMAGE_DIR ?= dist/image
IMAGE_SOURCE ?= https://github.com/hasplock/hasp


.PHONY: build-HaspFunction run-gcp build-gcp deploy-gcp
.PHONY: synth deploy destroy image image-push
.PHONY: all build run test test-go lint deps check-tools fuzz bench soak clean build-lambda build-azure
SOAK ?= 100000

all: build

## build: the hasp binary in bin/
build:
	$(GO) build -ldflags='-X main.version=$(VERSION)' -o $(BIN)/hasp ./cmd/hasp

## run: hasp serve on the embedded etcd (data in ./.hasp-data), on 127.0.0.1:8080, from a lean build
## (tag hasp_lite: the embedded etcd, etcd:// and memory:, so that a first run compiles a third of the
## code); `make build` then `bin/hasp serve --store dynamodb://...` for the cloud stores
run:
	$(GO) build -tags hasp_lite -ldflags='-X main.version=$(VERSION)' -o $(BIN)/hasp-lite ./cmd/hasp
	$(BIN)/hasp-lite serve $(ARGS)

## test: install what tests need, lint, run every test and a short fuzz
test: deps check-tools lint test-go
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./api
	$(GO) test -run '^$$' -fuzz '^FuzzHandler$$' -fuzztime $(FUZZTIME) ./api

TEST_LOG ?= $(BIN)/test-go.log
## TEST_P: test binaries run at once. The provider tests spend most of their time waiting on
## their servers (the cores were half idle at one binary per core), so one more than the cores.
TEST_P ?= $(shell echo $$(( $$(nproc) + 1 )))
test-go:
	@mkdir -p $(BIN)
	set -o pipefail; $(GO) test -count=1 -race -p $(TEST_P) -timeout 15m ./... 2>&1 | tee $(TEST_LOG)
	set -o pipefail; cd infra && $(GO) test -count=1 -timeout 10m ./... 2>&1 | tee -a ../$(TEST_LOG)
	@scripts/test-summary.sh $(TEST_LOG)

## lint: gofmt, go vet, go mod tidy must be clean
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags hasp_lite ./cmd/hasp
	$(GO) mod tidy -diff
	cd infra && $(GO) vet ./... && $(GO) mod tidy -diff

## deps: Go modules, the npm emulators (dynalite) and the Lambda emulator
deps: node_modules/.installed $(BIN)/tools/aws-lambda-rie
	scripts/apt-deps.sh
	$(GO) mod download

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@# A go.mod keeps node_modules (the CDK ships Go templates) out of ./...
	printf 'module github.com/hasplock/hasp/node_modules\n' > node_modules/go.mod
	touch $@

$(BIN)/tools/aws-lambda-rie:
	GOBIN=$(CURDIR)/$(BIN)/tools $(GO) install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)

## build-lambda: dist/lambda/bootstrap for provided.al2023 (LAMBDA_ARCH=arm64|amd64), at most 10 MB
build-lambda:
	mkdir -p dist/lambda
	CGO_ENABLED=0 GOOS=linux GOARCH=$(LAMBDA_ARCH) $(GO) build -tags $(LAMBDA_TAGS) -trimpath -ldflags='-s -w' -o dist/lambda/bootstrap ./functions/aws
	@size=$$(stat -c %s dist/lambda/bootstrap); echo "dist/lambda/bootstrap ($(LAMBDA_ARCH), tags $(LAMBDA_TAGS)): $$size bytes"; \
	  if [ -z "$(LAMBDA_TRACING)" ] && [ $$size -gt $(LAMBDA_MAX_BYTES) ]; then echo "bootstrap is over 10 MB"; exit 1; fi

## build-azure: AZURE_DIST (dist/azure), the deployable Azure Functions app: host.json, the function folders and the custom handler (linux/amd64)
build-azure:
	rm -rf $(AZURE_DIST)
	mkdir -p $(AZURE_DIST)
	cp -R functions/azure/app/. $(AZURE_DIST)/
	rm -f $(AZURE_DIST)/local.settings.json # local development only, never deployed
	CGO_ENABLED=0 GOOS=linux GOARCH=$(AZURE_ARCH) $(GO) build -trimpath -ldflags='-s -w' -o $(AZURE_DIST)/handler ./functions/azure
	@echo "$(AZURE_DIST): handler (linux/$(AZURE_ARCH), $$(stat -c %s $(AZURE_DIST)/handler) bytes), host.json, $$(cd $(AZURE_DIST) && ls -d */ | tr -d / | tr '\n' ' ')"

check-tools:
	@scripts/check-tools.sh

## fuzz: the decoders and the handler, longer (FUZZTIME=5m by default here)
fuzz: FUZZTIME = 5m
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./api
	$(GO) test -run '^$$' -fuzz '^FuzzHandler$$' -fuzztime $(FUZZTIME) ./api

## soak: SOAK (100000) contended acquires per backend under faults; 0 violations required
soak: deps
	HASP_SOAK=$(SOAK) $(GO) test -count=1 -p 1 -run 'Soak' -v -timeout 0 ./providers/... 2>&1 | tee soak.log | grep -E '^(=== RUN|--- |ok|FAIL)|soak: |acquires in'

## bench: the BENCHMARKS.md table, every ratio from one run
bench: deps
	HASP_BENCH=1 $(GO) test -count=1 -run '^TestReport' -v -timeout 30m ./bench/

# The CDK CLI runs offline and quietly.
CDK = cd infra && CDK_DISABLE_CLI_TELEMETRY=true CDK_DISABLE_VERSION_CHECK=1 JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 ../node_modules/.bin/cdk
ENV ?= dev
# TABLE=NAME: serve from an existing table, one restored with point-in-time recovery (docs/runbook.md).
CDK_TABLE = $(if $(TABLE),-c table=$(TABLE))

## synth: cdk synth ENV=dev|staging|prod offline into infra/cdk.out, then cfn-lint it
synth: deps build-lambda
	$(CDK) synth -c env=$(ENV) $(CDK_TABLE) --no-notices --quiet -o cdk.out
	cfn-lint infra/cdk.out/hasp-$(ENV).template.json

## deploy: cdk bootstrap and deploy ENV [TABLE=restored-table] (needs AWS credentials)
deploy: deps build-lambda
	$(CDK) bootstrap -c env=$(ENV) --no-notices
	$(CDK) deploy -c env=$(ENV) $(CDK_TABLE) --no-notices --require-approval never --outputs-file cdk.out/outputs-$(ENV).json

## destroy: delete ENV's stack (prod keeps its table: RETAIN)
destroy: deps build-lambda
	$(CDK) destroy -c env=$(ENV) --no-notices --force

## build-HaspFunction: called by `sam build` (template.yaml, BuildMethod: makefile)
build-HaspFunction:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -tags lambda.norpc,hasp_lambda -trimpath -ldflags='-s -w' -o $(ARTIFACTS_DIR)/bootstrap ./functions/aws

## run-gcp: the Cloud Function on this machine (Functions Framework) over a fresh Spanner emulator, on 127.0.0.1:8081 (PORT=...)
run-gcp:
	$(GO) build -o $(BIN)/hasp-gcp-local ./functions/gcp/cmd/hasp-gcp-local
	$(BIN)/hasp-gcp-local

## build-gcp: dist/gcp, the source folder that `gcloud functions deploy` uploads (vendored, built once here)
build-gcp:
	scripts/build-gcp.sh dist/gcp

# Google Cloud deployment settings (see README "Deploy to Google Cloud").
GCP_FUNCTION ?= hasp
GCP_REGION   ?= us-central1
# go.mod says go 1.26: the runtime must be at least that.
GCP_RUNTIME  ?= go126
GCP_STORE    ?=
GCP_SERVICE_ACCOUNT ?=

## deploy-gcp: gcloud functions deploy (needs gcloud credentials, GCP_STORE and GCP_SERVICE_ACCOUNT)
deploy-gcp: build-gcp
	@test -n "$(GCP_STORE)" || { echo "set GCP_STORE=spanner://projects/P/instances/I/databases/D"; exit 2; }
	@test -n "$(GCP_SERVICE_ACCOUNT)" || { echo "set GCP_SERVICE_ACCOUNT=NAME@PROJECT.iam.gserviceaccount.com (roles/spanner.databaseUser)"; exit 2; }
	gcloud functions deploy $(GCP_FUNCTION) --gen2 --region=$(GCP_REGION) --runtime=$(GCP_RUNTIME) \
	  --source=dist/gcp --entry-point=Hasp --trigger-http --no-allow-unauthenticated \
	  --run-service-account=$(GCP_SERVICE_ACCOUNT) --set-env-vars=HASP_STORE=$(GCP_STORE) \
	  --memory=256Mi --timeout=60s --concurrency=80 --cpu=1 --max-instances=20

clean:
	rm -rf $(BIN) dist

## image: the OCI image $(IMAGE):$(VERSION) for IMAGE_PLATFORMS, no Docker daemon: $(IMAGE_DIR)/hasp-$(VERSION) (OCI layout) and a docker-load tarball (linux/amd64)
image:
	rm -rf $(IMAGE_DIR)/bin
	@for p in $(IMAGE_PLATFORMS); do \
	  echo "build hasp for $$p"; \
	  CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build -trimpath -ldflags='-s -w -X main.version=$(VERSION)' -o $(IMAGE_DIR)/bin/$${p%/*}-$${p#*/}/hasp ./cmd/hasp || exit 1; \
	done
	cd infra && $(GO) run ./cmd/hasp-image build --image $(IMAGE):$(VERSION) --version $(VERSION) \
	  --source $(IMAGE_SOURCE) --revision "$$(git rev-parse HEAD 2>/dev/null)" --created "$$(git log -1 --format=%cI 2>/dev/null)" \
	  $(foreach p,$(IMAGE_PLATFORMS),--binary $(p)=$(abspath $(IMAGE_DIR))/bin/$(subst /,-,$(p))/hasp) \
	  --layout $(abspath $(IMAGE_DIR))/hasp-$(VERSION) \
	  $(if $(filter linux/amd64,$(IMAGE_PLATFORMS)),--tarball $(abspath $(IMAGE_DIR))/hasp-$(VERSION)-linux-amd64.tar)

## image-push: build, then push $(IMAGE):$(VERSION) (credentials from ~/.docker/config.json: docker login or crane auth login)
image-push: image
	cd infra && $(GO) run ./cmd/hasp-image push --layout $(abspath $(IMAGE_DIR))/hasp-$(VERSION) --image $(IMAGE):$(VERSION)

# Herald's make targets. `bash scripts/test` is the one test command; the
# targets below are conveniences and the long runs kept out of CI.

.PHONY: run test test-short bench bench-audience chaos fuzz

run:
	go run ./cmd/herald serve

test:
	bash scripts/test

test-short:
	SHORT=1 bash scripts/test

# Benchmarks with their same-run baselines (several minutes).
bench:
	go test -run '^$$' -bench . -benchmem -count 1 -timeout 60m ./...

bench-audience:
	go test -run '^$$' -bench Audience1M -benchmem -count 3 ./subscribers/

# Crash recovery: kill -9 mid-fan-out and mid-delivery, restart, count.
chaos:
	go test -count=1 -v -run TestCrashRecovery ./cmd/herald/

# Each fuzz target for FUZZTIME (default 30s).
FUZZTIME ?= 30s
fuzz:
	go test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./incident/
	go test -run '^$$' -fuzz FuzzNormalize -fuzztime $(FUZZTIME) ./subscribers/
	go test -run '^$$' -fuzz FuzzRead -fuzztime $(FUZZTIME) ./subscribers/
	go test -run '^$$' -fuzz FuzzCheckURL -fuzztime $(FUZZTIME) ./egress/
	go test -run '^$$' -fuzz FuzzSummarize -fuzztime $(FUZZTIME) ./channels/webhook/

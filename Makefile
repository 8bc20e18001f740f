# Herald's make targets. `bash scripts/test` is the one test command; the
# targets below are conveniences and the long runs kept out of CI.

.PHONY: run test test-short bench bench-serve bench-audience chaos fuzz screenshots ledger-measure

run:
	go run ./cmd/herald serve

test:
	bash scripts/test

test-short:
	SHORT=1 bash scripts/test

# Benchmarks with their same-run baselines (several minutes).
bench:
	go test -run '^$$' -bench . -benchmem -count 1 -timeout 60m ./...

# The benchmarks of herald serve as a process: 10 000 and 100 000 webhooks
# on 1 000 hosts (fast and at 200 ms), an R3 cluster against one node,
# --sync-always against the default (about 3 minutes).
bench-serve:
	go test -run '^$$' -bench 'BenchmarkServe' -benchtime 1x -count 1 -timeout 60m ./cmd/herald/

bench-audience:
	go test -run '^$$' -bench Audience1M -benchmem -count 3 ./subscribers/

# The ledger export over 1 000 000 notifications: its peak memory (flat),
# its speed, the bytes a record takes on disk and the server's memory per
# delivery (a few minutes; HERALD_LEDGER_ROWS=N for another size).
ledger-measure:
	HERALD_LEDGER_MEASURE=1 go test -count=1 -v -run '^TestLedgerMeasure$$' -timeout 60m ./dispatcher/

# Crash recovery (kill -9 mid-fan-out and mid-delivery, restart, count) and
# the cluster tests (3 nats-server processes, 2 herald serve: a node and a
# process killed; the quorum stopped past the duplicate window). About
# 3 minutes on 2 cores; bash scripts/test runs them too.
chaos:
	go test -count=1 -v -timeout 20m -run 'TestCrashRecovery|TestCluster' ./cmd/herald/

# Screenshots of every public page (headless Chromium), for the README.
screenshots:
	HERALD_SCREENSHOTS=$(CURDIR)/docs/screenshots go test -count=1 -run '^TestScreenshots$$' ./portal/

# Each fuzz target for FUZZTIME (default 30s).
FUZZTIME ?= 30s
fuzz:
	go test -run '^$$' -fuzz '^FuzzParseByteSize$$' -fuzztime $(FUZZTIME) ./cmd/herald/
	go test -run '^$$' -fuzz '^FuzzHeaderKeys$$' -fuzztime $(FUZZTIME) ./channels/email/
	go test -run '^$$' -fuzz '^FuzzNewReply$$' -fuzztime $(FUZZTIME) ./channels/email/
	go test -run '^$$' -fuzz '^FuzzQueueID$$' -fuzztime $(FUZZTIME) ./channels/email/
	go test -run '^$$' -fuzz '^FuzzCheckMessage$$' -fuzztime $(FUZZTIME) ./channels/slack/
	go test -run '^$$' -fuzz '^FuzzDecodeThread$$' -fuzztime $(FUZZTIME) ./channels/slack/
	go test -run '^$$' -fuzz '^FuzzParseAnswer$$' -fuzztime $(FUZZTIME) ./channels/slack/
	go test -run '^$$' -fuzz '^FuzzParseHook$$' -fuzztime $(FUZZTIME) ./channels/slack/
	go test -run '^$$' -fuzz '^FuzzNormalize$$' -fuzztime $(FUZZTIME) ./channels/sms/
	go test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./channels/sms/
	go test -run '^$$' -fuzz '^FuzzSummarize$$' -fuzztime $(FUZZTIME) ./channels/webhook/
	go test -run '^$$' -fuzz '^FuzzScanUpdateJob$$' -fuzztime $(FUZZTIME) ./dispatcher/
	go test -run '^$$' -fuzz '^FuzzAppendRecord$$' -fuzztime $(FUZZTIME) ./dispatcher/
	go test -run '^$$' -fuzz '^FuzzScanProgressRecord$$' -fuzztime $(FUZZTIME) ./dispatcher/
	go test -run '^$$' -fuzz '^FuzzParseLedgerTime$$' -fuzztime $(FUZZTIME) ./dispatcher/
	go test -run '^$$' -fuzz '^FuzzDestinationKey$$' -fuzztime $(FUZZTIME) ./dispatcher/
	go test -run '^$$' -fuzz '^FuzzCheckURL$$' -fuzztime $(FUZZTIME) ./egress/
	go test -run '^$$' -fuzz '^FuzzParseHosts$$' -fuzztime $(FUZZTIME) ./egress/
	go test -run '^$$' -fuzz '^FuzzExtract$$' -fuzztime $(FUZZTIME) ./egress/
	go test -run '^$$' -fuzz '^FuzzOpen$$' -fuzztime $(FUZZTIME) ./links/
	go test -run '^$$' -fuzz '^FuzzMatchLocale$$' -fuzztime $(FUZZTIME) ./portal/
	go test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./incident/
	go test -run '^$$' -fuzz '^FuzzCheckKeys$$' -fuzztime $(FUZZTIME) ./incident/
	go test -run '^$$' -fuzz '^FuzzStatuspagePayload$$' -fuzztime $(FUZZTIME) ./ingest/
	go test -run '^$$' -fuzz '^FuzzStatuspageList$$' -fuzztime $(FUZZTIME) ./ingest/
	go test -run '^$$' -fuzz '^FuzzFeed$$' -fuzztime $(FUZZTIME) ./ingest/
	go test -run '^$$' -fuzz '^FuzzNormalize$$' -fuzztime $(FUZZTIME) ./subscribers/
	go test -run '^$$' -fuzz '^FuzzRead$$' -fuzztime $(FUZZTIME) ./subscribers/
	go test -run '^$$' -fuzz '^FuzzMarkdown$$' -fuzztime $(FUZZTIME) ./templates/
	go test -run '^$$' -fuzz '^FuzzMeasure$$' -fuzztime $(FUZZTIME) ./templates/gsm7/
	go test -run '^$$' -fuzz '^FuzzSplitBody$$' -fuzztime $(FUZZTIME) ./templates/multilingual/
	go test -run '^$$' -fuzz '^FuzzSplitTitle$$' -fuzztime $(FUZZTIME) ./templates/multilingual/

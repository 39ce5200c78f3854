# The two set-up commands: `make run` and `make test`. Both install what is missing first.
BUILD ?= build/release
PRESET ?= release
DATA_DIR ?= ./data
LISTEN ?= 127.0.0.1:8080

.PHONY: deps build run test test-asan test-tsan fuzz bench bench-cluster bench-workbench bench-export bench-tickets format check-format clean

deps:
	@scripts/deps.sh

$(BUILD)/build.ninja:
	cmake --preset $(PRESET) >/dev/null

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j$$(nproc)

run: build
	$(BUILD)/src/cli/redrive serve --data-dir $(DATA_DIR) --listen $(LISTEN)

test: build
	@scripts/check-format.sh
	cd $(BUILD) && ctest --output-on-failure -j2 --timeout 600

# The whole suite under AddressSanitizer and UndefinedBehaviorSanitizer, but for the integration
# tests' PostgreSQL copies (label pg-integration): the server code they run is the same, and
# the PostgreSQL backend itself runs here in the store's conformance suite and cluster tests.
test-asan: deps
	cmake --preset debug >/dev/null
	cmake --build build/debug -j$$(nproc)
	cd build/debug && ctest -LE pg-integration --output-on-failure -j2 --timeout 900

# The concurrency and HTTP tests (ctest label `tsan`: engine, store, HTTP, and the integration
# tests that start the real binary) under ThreadSanitizer; builds only what they need
# (docs/testing.md). The first report stops the process that made it. Reports go to files in
# build/tsan/reports, so that one from a server the tests started, which they may not look at,
# fails the target too; they are printed at the end.
TSAN_OPTIONS ?= halt_on_error=1 second_deadlock_stack=1
test-tsan: deps
	cmake --preset tsan >/dev/null
	cmake --build --preset tsan -j$$(nproc)
	rm -rf build/tsan/reports && mkdir -p build/tsan/reports
	cd build/tsan && rc=0 && TSAN_OPTIONS="$(TSAN_OPTIONS) log_path=$$PWD/reports/tsan" \
	  ctest -L tsan --no-tests=error --output-on-failure -j2 --timeout 900 || rc=$$?; \
	if ls reports/tsan.* >/dev/null 2>&1; then \
	  cat reports/tsan.*; echo "ThreadSanitizer reported the above (build/tsan/reports)" >&2; \
	  exit 1; \
	fi; exit $$rc

# libFuzzer targets with ASan+UBSan (clang, build/fuzz): each for FUZZ_SECONDS, then a summary.
# FUZZ_TARGET=json_fuzz runs one; see docs/testing.md.
FUZZ_TARGET ?= all
FUZZ_SECONDS ?= 600
fuzz:
	scripts/fuzz.sh $(FUZZ_TARGET) $(FUZZ_SECONDS)

# redrive side by side with RabbitMQ (classic and quorum queues) and a PostgreSQL queue: installs
# the peers from Debian packages, builds, runs every scenario against each system, prints one
# table with the ratios and where the JSON and the chart went (bench/compare.sh; BENCH_SYSTEMS,
# BENCH_SCENARIOS, BENCH_SECONDS, BENCH_1M select; docs/benchmarks.md). About 16 minutes on 2
# quiet cores.
bench:
	@scripts/deps.sh --bench
	@$(MAKE) --no-print-directory build
	BUILD=$(BUILD) bench/compare.sh

# redrive with 1, 2 and 3 nodes on one private PostgreSQL, next to the PostgreSQL queue and to one
# node on SQLite, then the time a redrive job stalls when its node is killed (bench/cluster.sh;
# BENCH_SECONDS, BENCH_NODES, BENCH_FAILOVER select; docs/benchmarks.md). About 4 minutes.
bench-cluster: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j$$(nproc) --target redrive redrive_loadgen
	BUILD=$(BUILD) bench/cluster.sh

# redrive alone: the load generator's scenarios (bench/run.sh), then the dead-letter workbench
# benchmark (WORKBENCH_DEAD_LETTERS dead letters, 1,000,000 by default; takes a few minutes).
WORKBENCH_DEAD_LETTERS ?= 1000000
bench-workbench: build
	bench/run.sh
	$(BUILD)/bench/redrive_workbench_bench --dead-letters $(WORKBENCH_DEAD_LETTERS)

# Export speed (issue 14): EXPORT_DEAD_LETTERS dead letters of 1 KiB (1,000,000 by default) to
# NDJSON and gzip through the engine's export job, EXPORT_RUNS times, each against the disk's
# sequential write bandwidth (dd-like, same filesystem). The data directory goes under
# $BENCH_TMPDIR (or $TMPDIR, or /tmp): put it on the disk you mean to measure. The fill (set-up)
# takes a few minutes; EXPORT_BENCH_FLAGS="--reuse --keep" keeps it for the next run.
EXPORT_DEAD_LETTERS ?= 1000000
EXPORT_RUNS ?= 3
EXPORT_BENCH_FLAGS ?=
bench-export: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j$$(nproc) --target redrive_export_bench
	$(BUILD)/bench/redrive_export_bench --dead-letters $(EXPORT_DEAD_LETTERS) --runs $(EXPORT_RUNS) \
	  $(EXPORT_BENCH_FLAGS)

# Ticket cycle (issue 14): TICKET_DEAD_LETTERS dead letters (100,000 by default) on one ticket,
# from the digest firing to a retry answer having every one back in its queue.
TICKET_DEAD_LETTERS ?= 100000
bench-tickets: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j$$(nproc) --target redrive_ticket_bench
	$(BUILD)/bench/redrive_ticket_bench --dead-letters $(TICKET_DEAD_LETTERS)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf build

#include "script/exhausted_script.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace redrive::script {
namespace {

using Kind = ScriptDecision::Kind;

ScriptFailure SampleFailure() {
  ScriptFailure f;
  f.message_id = "01M80GMJZWM5MKNBBWFKAGV36P";
  f.origin = "orders";
  f.topic = "order-events";
  f.subscription = "billing";
  f.attributes = {{"type", "order.created"}, {"region", "eu"}};
  f.body = "{\"order\":42}";
  f.body_is_text = true;
  f.journal.attempts = {
      {1'763'777'781'786, "billing-1", "nack", "payment-declined", "card 4242: declined"},
      {1'763'777'782'348, "billing-2", "lease-timeout", "lease-timeout", "lease expired"},
      {1'763'777'785'688, "billing-1", "nack", "payment-declined", "card 4242: insufficient funds"},
  };
  f.journal.omitted = 2;
  f.delivery_count = 3;
  f.cause = "card 4242: insufficient funds";
  return f;
}

std::shared_ptr<const ExhaustedScript> MustCompile(const std::string& source,
                                                   ScriptLimits limits = {}) {
  auto script = ExhaustedScript::Compile(source, limits);
  EXPECT_TRUE(script.ok()) << script.status().ToString();
  if (!script.ok()) std::abort();
  return *script;
}

ScriptDecision RunSource(const std::string& source, const ScriptFailure& failure = SampleFailure(),
                         ScriptLimits limits = {}) {
  return MustCompile(source, limits)->Run(failure);
}

// A failed run: dead-letter, with `error` holding `text`.
void ExpectFailedWith(const ScriptDecision& d, const std::string& text) {
  EXPECT_EQ(d.kind, Kind::kDeadLetter);
  EXPECT_TRUE(d.failed());
  EXPECT_NE(d.error.find(text), std::string::npos) << "error: " << d.error;
}

// The ```lua block that follows "<!-- example: NAME -->" in docs/scripts.md.
std::string DocExample(const std::string& name) {
  std::ifstream in(std::string(REDRIVE_SOURCE_DIR) + "/docs/scripts.md");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string doc = ss.str();
  size_t marker = doc.find("<!-- example: " + name + " -->");
  if (marker == std::string::npos) return "";
  size_t open = doc.find("```lua\n", marker);
  size_t close = doc.find("\n```", open);
  if (open == std::string::npos || close == std::string::npos) return "";
  return doc.substr(open + 7, close - open - 7 + 1);
}

// ---- Compile ----

TEST(ExhaustedScriptCompileTest, RefusesASyntaxErrorNamingTheLine) {
  auto script = ExhaustedScript::Compile("deadLetter()\nif x then\n  drop(\nend\n");
  ASSERT_FALSE(script.ok());
  EXPECT_EQ(script.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(script.status().message().find("script does not compile: script:4:"), std::string::npos)
      << script.status().message();
}

TEST(ExhaustedScriptCompileTest, RefusesBytecode) {
  auto script = ExhaustedScript::Compile(std::string("\x1bLua\x54\x00", 6) + "junk");
  ASSERT_FALSE(script.ok());
  EXPECT_EQ(script.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(script.status().message().find("precompiled"), std::string::npos);
}

TEST(ExhaustedScriptCompileTest, RefusesASourceOverTheLimit) {
  ScriptLimits limits;
  limits.max_source = 100;
  auto script = ExhaustedScript::Compile("deadLetter()\n" + std::string(100, '\n'), limits);
  ASSERT_FALSE(script.ok());
  EXPECT_EQ(script.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(script.status().message().find("the limit is 100 bytes"), std::string::npos)
      << script.status().message();
  EXPECT_TRUE(ExhaustedScript::Compile("deadLetter()", limits).ok());
}

TEST(ExhaustedScriptCompileTest, DoesNotRunTheScript) {
  // An endless loop compiles (and would only fail when run).
  EXPECT_TRUE(ExhaustedScript::Compile("while true do end").ok());
}

// ---- Handlers ----

TEST(ExhaustedScriptTest, DeadLetterDecides) {
  ScriptDecision d = RunSource("deadLetter()");
  EXPECT_EQ(d.kind, Kind::kDeadLetter);
  EXPECT_FALSE(d.failed());
}

TEST(ExhaustedScriptTest, DropDecides) {
  ScriptDecision d = RunSource("drop()");
  EXPECT_EQ(d.kind, Kind::kDrop);
  EXPECT_FALSE(d.failed());
}

TEST(ExhaustedScriptTest, RerouteDecidesWithTheQueue) {
  ScriptDecision d = RunSource("reroute('orders-retry')");
  EXPECT_EQ(d.kind, Kind::kReroute);
  EXPECT_EQ(d.queue, "orders-retry");
  EXPECT_FALSE(d.failed());
}

TEST(ExhaustedScriptTest, RerouteToAnInvalidNameFails) {
  ScriptDecision d = RunSource("\nreroute('bad name!')");
  ExpectFailedWith(d, "script:2: reroute: queue name may contain only");
  EXPECT_EQ(d.queue, "");
  ExpectFailedWith(RunSource("reroute('')"), "queue name is empty");
  ExpectFailedWith(RunSource("reroute(42)"), "reroute: queue must be a string, not number");
  ExpectFailedWith(RunSource("reroute()"), "reroute: queue must be a string, not no value");
}

TEST(ExhaustedScriptTest, RetryInTakesADurationOrMilliseconds) {
  ScriptDecision d = RunSource("retryIn('30s')");
  EXPECT_EQ(d.kind, Kind::kRetryIn);
  EXPECT_EQ(d.delay, 30'000);
  EXPECT_FALSE(d.failed());
  d = RunSource("retryIn(1500)");
  EXPECT_EQ(d.kind, Kind::kRetryIn);
  EXPECT_EQ(d.delay, 1500);
  d = RunSource("retryIn(1500.0)");
  EXPECT_EQ(d.delay, 1500);
  d = RunSource("retryIn(0)");
  EXPECT_EQ(d.kind, Kind::kRetryIn);
  EXPECT_EQ(d.delay, 0);
  d = RunSource("retryIn('7d')");
  EXPECT_EQ(d.delay, 7 * 86'400'000LL);
}

TEST(ExhaustedScriptTest, RetryInOutOfRangeOrMalformedFails) {
  ExpectFailedWith(RunSource("retryIn('8d')"), "retryIn: delay must be from 0 to 7d");
  ExpectFailedWith(RunSource("retryIn(-1)"), "retryIn: delay must be from 0 to 7d");
  ExpectFailedWith(RunSource("retryIn(7 * 86400000 + 1)"), "retryIn: delay must be from 0 to 7d");
  ExpectFailedWith(RunSource("retryIn(1.5)"), "whole number of milliseconds");
  ExpectFailedWith(RunSource("retryIn('soon')"), "retryIn: ");
  ExpectFailedWith(RunSource("retryIn({})"), "not table");
}

TEST(ExhaustedScriptTest, TheFirstHandlerDecidesAndASecondFails) {
  ScriptDecision d = RunSource("deadLetter()\ndrop()");
  ExpectFailedWith(d, "script:2: drop() called after deadLetter() decided: call one handler only");
  ExpectFailedWith(RunSource("drop() drop()"), "drop() called after drop() decided");
  // A failure after a handler still fails the run.
  ExpectFailedWith(RunSource("drop()\nerror('late')"), "script:2: late");
}

TEST(ExhaustedScriptTest, NoHandlerFails) {
  ExpectFailedWith(RunSource("local x = 1"), "script called no handler");
  ExpectFailedWith(RunSource(""), "script called no handler");
}

TEST(ExhaustedScriptTest, AnErrorFailsWithItsMessage) {
  ExpectFailedWith(RunSource("\n\nerror('boom')"), "script:3: boom");
  ExpectFailedWith(RunSource("local t = nil\nreturn t.x"), "attempt to index a nil value");
  ExpectFailedWith(RunSource("error(42)"), "42");
  ExpectFailedWith(RunSource("error(setmetatable({}, {__tostring = function() while true do "
                             "end end}))"),
                   "script raised an error object of type table");
}

TEST(ExhaustedScriptTest, ALongErrorIsClippedToOneKiB) {
  ScriptDecision d = RunSource("error(string.rep('\\u{e9}', 5000))");
  EXPECT_TRUE(d.failed());
  EXPECT_LE(d.error.size(), kMaxErrorBytes);
  EXPECT_GE(d.error.size(), kMaxErrorBytes - 4);
  EXPECT_TRUE(d.error.size() % 2 == 0 || d.error.back() != '\xc3') << "cut inside a character";
  EXPECT_NE(static_cast<unsigned char>(d.error.back()), 0xc3);
}

// ---- The failure the script sees ----

TEST(ExhaustedScriptTest, TheScriptSeesEveryFieldOfTheFailure) {
  const char* source = R"(
    local f = failure
    assert(f.id == '01M80GMJZWM5MKNBBWFKAGV36P', f.id)
    assert(f.origin == 'orders')
    assert(f.topic == 'order-events')
    assert(f.subscription == 'billing')
    assert(f.attributes.type == 'order.created')
    assert(f.attributes.region == 'eu')
    assert(f.attributes.missing == nil)
    assert(f.body == '{"order":42}')
    assert(f.bodyIsText == true)
    assert(math.type(f.deliveryCount) == 'integer' and f.deliveryCount == 3)
    assert(#f.attempts == 3)
    assert(f.attemptsOmitted == 2)
    local a = f.attempts[1]
    assert(a.at == '2025-11-22T02:16:21.786Z', a.at)
    assert(a.atMs == 1763777781786)
    assert(a.consumer == 'billing-1')
    assert(a.outcome == 'nack')
    assert(a.reason == 'payment-declined')
    assert(a.error == 'card 4242: declined')
    assert(f.attempts[2].outcome == 'lease-timeout')
    assert(f.attempts[3].error == 'card 4242: insufficient funds')
    assert(failureCause == 'card 4242: insufficient funds')
    deadLetter()
  )";
  ScriptDecision d = RunSource(source);
  EXPECT_FALSE(d.failed()) << d.error;
  EXPECT_EQ(d.kind, Kind::kDeadLetter);
}

TEST(ExhaustedScriptTest, ABinaryBodyArrivesAsItsBytes) {
  ScriptFailure f = SampleFailure();
  f.body = std::string("\x00\xff\x01", 3);
  f.body_is_text = false;
  ScriptDecision d = RunSource(
      "assert(failure.bodyIsText == false)\n"
      "assert(#failure.body == 3 and failure.body:byte(1) == 0 and failure.body:byte(2) == 255)\n"
      "drop()",
      f);
  EXPECT_FALSE(d.failed()) << d.error;
  EXPECT_EQ(d.kind, Kind::kDrop);
}

TEST(ExhaustedScriptTest, ABodyLargerThanTheMemoryLimitDoesNotCount) {
  ScriptFailure f = SampleFailure();
  f.body = std::string(2 * 1024 * 1024, 'x');
  ScriptLimits limits;
  limits.max_memory = 1024 * 1024;
  ScriptDecision d = RunSource("assert(#failure.body == 2 * 1024 * 1024) drop()", f, limits);
  EXPECT_FALSE(d.failed()) << d.error;
}

TEST(ExhaustedScriptTest, LogKeepsLinesUpToTheLimit) {
  ScriptDecision d = RunSource("log('a', 1, true, nil)\nlog()\ndeadLetter()");
  ASSERT_EQ(d.log.size(), 2u);
  EXPECT_EQ(d.log[0], "a 1 true nil");
  EXPECT_EQ(d.log[1], "");
  d = RunSource("for i = 1, 30 do log(i) end log(string.rep('y', 5000)) drop()");
  ASSERT_EQ(d.log.size(), kMaxLogLines);
  EXPECT_EQ(d.log[0], "1");
  EXPECT_EQ(d.log_omitted, 11);
  d = RunSource("log(string.rep('y', 5000)) drop()");
  ASSERT_EQ(d.log.size(), 1u);
  EXPECT_EQ(d.log[0].size(), kMaxLogLineBytes);
  // A failed run keeps its lines: the engine logs them beside the error.
  d = RunSource("log('before') error('x')");
  ASSERT_EQ(d.log.size(), 1u);
  EXPECT_TRUE(d.failed());
}

TEST(ExhaustedScriptTest, RunsDoNotShareGlobals) {
  auto script = MustCompile("if seen then drop() else seen = true deadLetter() end");
  EXPECT_EQ(script->Run(SampleFailure()).kind, Kind::kDeadLetter);
  EXPECT_EQ(script->Run(SampleFailure()).kind, Kind::kDeadLetter);
}

// ---- The sandbox ----

TEST(ExhaustedScriptSandboxTest, ForbiddenLibrariesAreAbsent) {
  for (const char* name : {"io", "os", "package", "require", "debug", "dofile", "loadfile",
                           "coroutine", "collectgarbage", "print", "warn"}) {
    SCOPED_TRACE(name);
    ScriptDecision d = RunSource(std::string("assert(") + name + " == nil, '" + name +
                                 " is present') deadLetter()");
    EXPECT_FALSE(d.failed()) << d.error;
    ExpectFailedWith(RunSource(std::string(name) + "()"),
                     std::string("attempt to call a nil value (global '") + name + "')");
  }
  ExpectFailedWith(RunSource("os.execute('touch /tmp/redrive-script-pwned')"),
                   "attempt to index a nil value (global 'os')");
  ExpectFailedWith(RunSource("io.open('/etc/passwd')"),
                   "attempt to index a nil value (global 'io')");
  ExpectFailedWith(RunSource("require('os')"), "attempt to call a nil value (global 'require')");
}

TEST(ExhaustedScriptSandboxTest, BytecodeCannotBeMadeOrLoaded) {
  ExpectFailedWith(RunSource("local f = function() end\nlocal b = string.dump(f)"),
                   "script:2: attempt to call a nil value (field 'dump')");
  // A binary chunk given to load is refused.
  ScriptDecision d = RunSource(
      "local f, err = load('\\27Lua\\84\\0junk')\n"
      "assert(f == nil)\n"
      "error(err)");
  ExpectFailedWith(d, "attempt to load a binary chunk");
  // Text still loads, and runs inside the sandbox.
  d = RunSource("local f = assert(load('return io'))\nassert(f() == nil)\ndrop()");
  EXPECT_FALSE(d.failed()) << d.error;
  EXPECT_EQ(d.kind, Kind::kDrop);
  // With an environment.
  d = RunSource("local f = load('x = 1', 'chunk', 't', {})\nf()\nassert(x == nil)\ndrop()");
  EXPECT_FALSE(d.failed()) << d.error;
}

TEST(ExhaustedScriptSandboxTest, AnEndlessLoopIsStoppedAtTheBound) {
  ScriptLimits limits;
  limits.max_instructions = 100'000;
  auto start = std::chrono::steady_clock::now();
  ScriptDecision d = RunSource("while true do end", SampleFailure(), limits);
  auto took = std::chrono::steady_clock::now() - start;
  ExpectFailedWith(d, "script ran too long: more than 100000 instructions");
  EXPECT_LT(took, std::chrono::seconds(5));
  // With the default bound too, and with function calls in the loop.
  ExpectFailedWith(RunSource("local function f() return 1 end while true do f() end"),
                   "script ran too long: more than 1000000 instructions");
  // A loop that stays just under the bound is fine.
  d = RunSource("for i = 1, 1000 do end drop()", SampleFailure(), limits);
  EXPECT_FALSE(d.failed()) << d.error;
}

TEST(ExhaustedScriptSandboxTest, PcallCannotCatchTheInstructionBound) {
  ExpectFailedWith(RunSource("while true do pcall(function() while true do end end) end"),
                   "script ran too long");
  ExpectFailedWith(RunSource("pcall(function() while true do end end)\ndeadLetter()"),
                   "script ran too long");
  ExpectFailedWith(
      RunSource("xpcall(function() while true do end end, function(e) return e end)\ndrop()"),
      "script ran too long");
}

TEST(ExhaustedScriptSandboxTest, FinalizersAreRefused) {
  // Lua runs finalizers with hooks off: a __gc loop would escape the instruction bound.
  ExpectFailedWith(RunSource("setmetatable({}, {__gc = function() while true do end end})\n"
                             "drop()"),
                   "script:1: setmetatable: __gc metamethods are not allowed in scripts");
  ExpectFailedWith(RunSource("setmetatable({}, {__gc = false}) drop()"), "__gc metamethods");
  // A __gc added to the metatable afterwards is ignored by Lua, so it is harmless.
  ScriptDecision d = RunSource(
      "local mt = {}\n"
      "local t = setmetatable({}, mt)\n"
      "mt.__gc = function() while true do end end\n"
      "t = nil\n"
      "for i = 1, 100 do local s = string.rep('x', 1024 * 1024) end\n"
      "drop()");
  EXPECT_FALSE(d.failed()) << d.error;
  EXPECT_EQ(d.kind, Kind::kDrop);
  // Other metatables work.
  d = RunSource(
      "local t = setmetatable({}, {__index = function(_, k) return k .. '!' end})\n"
      "assert(t.x == 'x!')\n"
      "drop()");
  EXPECT_FALSE(d.failed()) << d.error;
}

TEST(ExhaustedScriptSandboxTest, CostlyPatternsAreRefusedBeforeTheyRun) {
  // Cubic backtracking over 2,000 bytes would run for minutes inside one library call, where the
  // instruction count does not reach.
  auto start = std::chrono::steady_clock::now();
  ExpectFailedWith(RunSource("local s = string.rep('a', 2000)\nstring.find(s, '.-.-.-b')"),
                   "script:2: string.find: pattern '.-.-.-b' could take too long over 2000 bytes");
  ExpectFailedWith(RunSource("local s = string.rep('a', 2000) s:match('(a*)(a*)(a*)b')"),
                   "string.match: pattern");
  ExpectFailedWith(RunSource("local s = string.rep('a', 20000) s:gsub('a-b', '')"),
                   "string.gsub: pattern");
  ExpectFailedWith(RunSource("local s = string.rep('a', 20000) for x in s:gmatch('%w+b') do end"),
                   "string.gmatch: pattern");
  ExpectFailedWith(RunSource("local s = string.rep('(', 20000) s:find('%b()')"),
                   "string.find: pattern");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));

  // What is cheap still works: plain finds and literal patterns over any subject, repetitions
  // over short subjects or anchored, and the pattern functions as methods.
  ScriptFailure f = SampleFailure();
  f.body = std::string(1024 * 1024, 'a') + "\"type\":\"order.created\"";
  ScriptDecision d = RunSource(
      "local b = failure.body\n"
      "assert(b:find('\"type\":\"order', 1, true))\n"
      "assert(b:find('\"type\":\"order.created'))\n"
      "assert(failure.attributes.type:match('^(%w+)%.(%w+)$') == 'order')\n"
      "assert(select(2, failureCause:gsub('%d', '#')) == 4)\n"
      "local words = 0 for w in failureCause:gmatch('%a+') do words = words + 1 end\n"
      "assert(words == 3, words)\n"
      "assert(('key=value'):match('^(%w+)=(%w*)$') == 'key')\n"
      "drop()",
      f);
  EXPECT_FALSE(d.failed()) << d.error;
  EXPECT_EQ(d.kind, Kind::kDrop);
}

TEST(ExhaustedScriptSandboxTest, PcallStillCatchesOrdinaryErrors) {
  ScriptDecision d = RunSource(
      "local ok, err = pcall(error, 'inner')\n"
      "assert(not ok and err == 'inner')\n"
      "local ok2, err2 = xpcall(function() error('x', 0) end, function(e) return 'h:' .. e end)\n"
      "assert(not ok2 and err2 == 'h:x', err2)\n"
      "assert(select('#', pcall(function() return 1, 2 end)) == 3)\n"
      "drop()");
  EXPECT_FALSE(d.failed()) << d.error;
  EXPECT_EQ(d.kind, Kind::kDrop);
}

TEST(ExhaustedScriptSandboxTest, AMemoryBombFailsAndTheProcessCarriesOn) {
  ExpectFailedWith(RunSource("local s = string.rep('x', 1e9)\ndrop()"),
                   "script used too much memory: more than 8 MiB");
  // Growing a table: with a budget of instructions high enough that memory runs out first.
  ScriptLimits many_instructions;
  many_instructions.max_instructions = 100'000'000;
  ExpectFailedWith(RunSource("local t = {} local i = 0 while true do i = i + 1 t[i] = {i} end",
                             SampleFailure(), many_instructions),
                   "script used too much memory: more than 8 MiB");
  ExpectFailedWith(RunSource("local t = {} while true do t[#t + 1] = string.rep('x', 1000) .. #t "
                             "end"),
                   "script used too much memory");
  ExpectFailedWith(RunSource("local s = 'x' while true do s = s .. s end"),
                   "script used too much memory");
  // Caught or not, it fails.
  ExpectFailedWith(RunSource("pcall(string.rep, 'x', 1e9)\ndrop()"), "script used too much memory");
  // And the next run is unaffected.
  EXPECT_EQ(RunSource("local s = string.rep('x', 1e6) drop()").kind, Kind::kDrop);
}

TEST(ExhaustedScriptSandboxTest, GarbageDoesNotCountOnceCollected) {
  // 50 MiB allocated in all, never more than about 1 MiB live.
  ScriptDecision d =
      RunSource("for i = 1, 50 do local s = string.rep('x', 1024 * 1024 - 100) .. i end drop()");
  EXPECT_FALSE(d.failed()) << d.error;
}

TEST(ExhaustedScriptSandboxTest, DeepRecursionFails) {
  // Lua's stack grows until the memory bound stops it.
  ExpectFailedWith(RunSource("local function f(n) return f(n + 1) + 1 end f(1)"),
                   "script used too much memory");
  // Recursion through metamethods stops at Lua's C-stack bound.
  ExpectFailedWith(RunSource("local t = setmetatable({}, {__index = function(t, k) return t[k] "
                             "end}) local x = t.a drop()"),
                   "script:1: C stack overflow");
}

// ---- Threads ----

TEST(ExhaustedScriptTest, RunIsThreadSafe) {
  auto script = MustCompile(
      "local n = tonumber(failure.attributes.n)\n"
      "if n % 3 == 0 then drop() elseif n % 3 == 1 then reroute('q-' .. n) else retryIn(n) end");
  constexpr int kThreads = 8, kRuns = 200;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRuns; ++i) {
        int n = t * kRuns + i;
        ScriptFailure f = SampleFailure();
        f.attributes["n"] = std::to_string(n);
        ScriptDecision d = script->Run(f);
        bool ok =
            !d.failed() &&
            ((n % 3 == 0 && d.kind == Kind::kDrop) ||
             (n % 3 == 1 && d.kind == Kind::kReroute && d.queue == "q-" + std::to_string(n)) ||
             (n % 3 == 2 && d.kind == Kind::kRetryIn && d.delay == n));
        if (!ok) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

// Not a benchmark: reports the rate of runs of a trivial script, the figure the module's README
// quotes, and fails only if it is absurdly slow.
TEST(ExhaustedScriptTest, RunsOfATrivialScriptPerSecond) {
  auto script = MustCompile("deadLetter()");
  ScriptFailure f = SampleFailure();
  constexpr int kRuns = 5000;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kRuns; ++i) ASSERT_FALSE(script->Run(f).failed());
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%d runs in %.3f s: %.0f runs/s\n", kRuns, seconds, kRuns / seconds);
  EXPECT_LT(seconds, 30.0);
}

// ---- The examples of docs/scripts.md, read from the page ----

TEST(ExhaustedScriptDocsTest, NotifyAndDeadLetter) {
  std::string source = DocExample("notify");
  ASSERT_FALSE(source.empty());
  ScriptFailure f = SampleFailure();
  f.journal.attempts.back().at = 1'795'313'785'688;  // 2026-11-22T02:16:25.688Z, as documented
  ScriptDecision d = RunSource(source, f);
  EXPECT_FALSE(d.failed()) << d.error;
  EXPECT_EQ(d.kind, Kind::kDeadLetter);
  ASSERT_EQ(d.log.size(), 2u);
  EXPECT_EQ(d.log[0],
            "giving up on 01M80GMJZWM5MKNBBWFKAGV36P from orders after 3 deliveries: card 4242: "
            "insufficient funds");
  EXPECT_EQ(d.log[1], "last attempt: nack by billing-1 at 2026-11-22T02:16:25.688Z");
  // An empty journal still dead-letters.
  f.journal.attempts.clear();
  d = RunSource(source, f);
  EXPECT_FALSE(d.failed()) << d.error;
  EXPECT_EQ(d.log.size(), 1u);
}

TEST(ExhaustedScriptDocsTest, DropKnownBadMessageTypes) {
  std::string source = DocExample("drop-known-bad");
  ASSERT_FALSE(source.empty());
  auto script = MustCompile(source);
  ScriptFailure f = SampleFailure();
  f.attributes["type"] = "heartbeat";
  ScriptDecision d = script->Run(f);
  EXPECT_EQ(d.kind, Kind::kDrop);
  EXPECT_FALSE(d.failed()) << d.error;
  EXPECT_EQ(d.log,
            std::vector<std::string>{"dropping 01M80GMJZWM5MKNBBWFKAGV36P of type heartbeat"});
  f.attributes["type"] = "order.created";
  EXPECT_EQ(script->Run(f).kind, Kind::kDeadLetter);
  EXPECT_FALSE(script->Run(f).failed());
  f.attributes.erase("type");
  EXPECT_EQ(script->Run(f).kind, Kind::kDeadLetter);
  EXPECT_FALSE(script->Run(f).failed());
}

TEST(ExhaustedScriptDocsTest, RerouteByAttribute) {
  std::string source = DocExample("reroute-by-region");
  ASSERT_FALSE(source.empty());
  auto script = MustCompile(source);
  ScriptFailure f = SampleFailure();
  ScriptDecision d = script->Run(f);
  EXPECT_FALSE(d.failed()) << d.error;
  EXPECT_EQ(d.kind, Kind::kReroute);
  EXPECT_EQ(d.queue, "eu-retry");
  f.attributes.erase("region");
  d = script->Run(f);
  EXPECT_FALSE(d.failed()) << d.error;
  EXPECT_EQ(d.kind, Kind::kDeadLetter);
  f.attributes["region"] = "eu west";
  d = script->Run(f);
  EXPECT_EQ(d.kind, Kind::kDeadLetter);
  EXPECT_EQ(d.error,
            "script:5: reroute: queue name may contain only letters, digits, '.', '_' and '-'");
}

}  // namespace
}  // namespace redrive::script

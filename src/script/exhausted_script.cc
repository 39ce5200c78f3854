#include "script/exhausted_script.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <lua.hpp>
#include <string_view>
#include <utility>

#include "common/text.h"

namespace redrive::script {
namespace {

// Lua raises errors with longjmp (Debian builds it as C), which skips C++ destructors. So no
// function below that may raise a Lua error holds a C++ object with a destructor across the
// call: work with strings is done in helpers that return before anything is raised, and every
// std::string they fill lives in RunContext, which the caller of lua_pcall owns.

constexpr char kChunkName[] = "=script";  // error messages read "script:3: ..."
constexpr int64_t kHookEvery = 1000;      // instructions between two runs of the count hook

// One run: owned by Run's frame, reached from Lua through the state's extra space and the
// allocator's user data.
struct RunContext {
  const ScriptFailure* failure = nullptr;
  const ScriptLimits* limits = nullptr;
  const std::string* source = nullptr;
  std::vector<std::string> attempt_times;  // failure->journal's times in RFC 3339

  lua_State* L = nullptr;
  size_t used = 0;  // bytes allocated by the state
  size_t limit = std::numeric_limits<size_t>::max();
  int64_t hook_every = kHookEvery;
  int64_t instructions = 0;
  bool over_instructions = false;

  bool decided = false;
  const char* decided_by = "";  // the handler that decided
  ScriptDecision decision;
  std::string pending_error;  // a handler's error, raised once its C++ work is done
};

RunContext* Ctx(lua_State* L) { return *static_cast<RunContext**>(lua_getextraspace(L)); }

void CountHook(lua_State* L, lua_Debug*);

// Counts every byte the state holds and refuses past ctx->limit; Lua then collects garbage and
// tries once more before it raises "not enough memory" (LUA_ERRMEM).
void* Allocate(void* ud, void* ptr, size_t osize, size_t nsize) {
  auto* ctx = static_cast<RunContext*>(ud);
  size_t old = ptr != nullptr ? osize : 0;
  if (nsize == 0) {
    std::free(ptr);
    ctx->used -= old;
    return nullptr;
  }
  if (nsize > old && nsize - old > ctx->limit - std::min(ctx->used, ctx->limit)) return nullptr;
  void* block = std::realloc(ptr, nsize);
  if (block == nullptr) return nullptr;
  ctx->used = ctx->used - old + nsize;
  return block;
}

// Once the budget is spent, every instruction raises again: a script that catches the error
// (in a finalizer, say) cannot run on.
void CountHook(lua_State* L, lua_Debug*) {
  RunContext* ctx = Ctx(L);
  ctx->instructions += ctx->hook_every;
  if (ctx->over_instructions || ctx->instructions > ctx->limits->max_instructions) {
    ctx->over_instructions = true;
    ctx->hook_every = 1;
    lua_sethook(L, CountHook, LUA_MASKCOUNT, 1);
    luaL_error(L, "script ran too long");
  }
}

// Raises ctx->pending_error at the script's line.
int RaisePending(lua_State* L) {
  RunContext* ctx = Ctx(L);
  luaL_where(L, 1);
  lua_pushlstring(L, ctx->pending_error.data(), ctx->pending_error.size());
  lua_concat(L, 2);
  return lua_error(L);
}

// Records the decision unless one was made; false (with ctx->pending_error) if one was.
bool Decide(RunContext* ctx, const char* handler, ScriptDecision::Kind kind) {
  if (ctx->decided) {
    ctx->pending_error = std::string(handler) + "() called after " + ctx->decided_by +
                         "() decided: call one handler only";
    return false;
  }
  ctx->decided = true;
  ctx->decided_by = handler;
  ctx->decision.kind = kind;
  return true;
}

int DeadLetterHandler(lua_State* L) {
  if (!Decide(Ctx(L), "deadLetter", ScriptDecision::Kind::kDeadLetter)) return RaisePending(L);
  return 0;
}

int DropHandler(lua_State* L) {
  if (!Decide(Ctx(L), "drop", ScriptDecision::Kind::kDrop)) return RaisePending(L);
  return 0;
}

bool Reroute(RunContext* ctx, std::string_view queue) {
  if (Status st = ValidateName(queue, "reroute: queue"); !st.ok()) {
    ctx->pending_error = st.message();
    return false;
  }
  if (!Decide(ctx, "reroute", ScriptDecision::Kind::kReroute)) return false;
  ctx->decision.queue = std::string(queue);
  return true;
}

int RerouteHandler(lua_State* L) {
  if (lua_type(L, 1) != LUA_TSTRING) {
    return luaL_error(L, "reroute: queue must be a string, not %s", luaL_typename(L, 1));
  }
  size_t n = 0;
  const char* queue = lua_tolstring(L, 1, &n);
  if (!Reroute(Ctx(L), std::string_view(queue, n))) return RaisePending(L);
  return 0;
}

bool RetryIn(RunContext* ctx, DurationMs delay) {
  if (delay < 0 || delay > kMaxRetryDelay) {
    ctx->pending_error = "retryIn: delay must be from 0 to 7d, not " + std::to_string(delay) + "ms";
    return false;
  }
  if (!Decide(ctx, "retryIn", ScriptDecision::Kind::kRetryIn)) return false;
  ctx->decision.delay = delay;
  return true;
}

bool RetryInText(RunContext* ctx, std::string_view text) {
  Result<DurationMs> delay = ParseDuration(text);
  if (!delay.ok()) {
    ctx->pending_error = "retryIn: " + delay.status().message();
    return false;
  }
  return RetryIn(ctx, *delay);
}

int RetryInHandler(lua_State* L) {
  RunContext* ctx = Ctx(L);
  if (lua_type(L, 1) == LUA_TNUMBER) {
    int is_integer = 0;
    lua_Integer ms = lua_tointegerx(L, 1, &is_integer);
    if (!is_integer) {
      return luaL_error(L, "retryIn: delay must be a whole number of milliseconds");
    }
    if (!RetryIn(ctx, static_cast<DurationMs>(ms))) return RaisePending(L);
    return 0;
  }
  if (lua_type(L, 1) == LUA_TSTRING) {
    size_t n = 0;
    const char* text = lua_tolstring(L, 1, &n);
    if (!RetryInText(ctx, std::string_view(text, n))) return RaisePending(L);
    return 0;
  }
  return luaL_error(L, "retryIn: delay must be milliseconds or a duration like '30s', not %s",
                    luaL_typename(L, 1));
}

void KeepLogLine(RunContext* ctx, std::string_view line) {
  ScriptDecision& d = ctx->decision;
  if (d.log.size() >= kMaxLogLines) {
    ++d.log_omitted;
    return;
  }
  d.log.emplace_back(line.substr(0, kMaxLogLineBytes));
}

// log(...): its arguments as tostring() gives them, separated by spaces, as one line.
int LogHandler(lua_State* L) {
  int n = lua_gettop(L);
  for (int i = 1; i <= n; ++i) {
    luaL_tolstring(L, i, nullptr);
    if (i < n) lua_pushliteral(L, " ");
  }
  lua_concat(L, n == 0 ? 0 : 2 * n - 1);
  size_t len = 0;
  const char* line = lua_tolstring(L, -1, &len);
  KeepLogLine(Ctx(L), std::string_view(line, len));
  return 0;
}

// A limit's error must reach the top of the run, so the sandbox's pcall, xpcall and load do not
// catch memory errors, errors in error handling, or the count hook's error.
bool MustPropagate(lua_State* L, int status) {
  return status == LUA_ERRMEM || status == LUA_ERRERR || Ctx(L)->over_instructions;
}

int SafePcall(lua_State* L) {
  luaL_checkany(L, 1);
  int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
  if (status != LUA_OK && MustPropagate(L, status)) return lua_error(L);
  lua_pushboolean(L, status == LUA_OK);
  lua_insert(L, 1);
  return lua_gettop(L);
}

int SafeXpcall(lua_State* L) {
  int n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  // [f, handler, args...] -> [handler, f, args...]
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_replace(L, 1);
  lua_replace(L, 2);
  int status = lua_pcall(L, n - 2, LUA_MULTRET, 1);
  if (status != LUA_OK && MustPropagate(L, status)) return lua_error(L);
  lua_pushboolean(L, status == LUA_OK);
  lua_replace(L, 1);
  return lua_gettop(L);
}

// load(chunk [, chunkname [, mode [, env]]]) for text chunks given as strings only; the mode is
// ignored: binary chunks are always refused.
int TextLoad(lua_State* L) {
  size_t n = 0;
  const char* chunk = luaL_checklstring(L, 1, &n);
  const char* name = luaL_optstring(L, 2, "=(load)");
  int status = luaL_loadbufferx(L, chunk, n, name, "t");
  if (status != LUA_OK) {
    if (MustPropagate(L, status)) return lua_error(L);
    luaL_pushfail(L);
    lua_insert(L, -2);
    return 2;
  }
  if (!lua_isnone(L, 4)) {
    lua_pushvalue(L, 4);
    if (lua_setupvalue(L, -2, 1) == nullptr) lua_pop(L, 1);
  }
  return 1;
}

// setmetatable refusing a metatable with __gc. Lua runs finalizers with hooks off, so the
// count hook could not bound one; and a table is only marked for finalization when its metatable
// is set with __gc already present (a __gc added later is ignored), so refusing it here is enough.
int SafeSetmetatable(lua_State* L) {
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, 2) != LUA_TNIL) {
      return luaL_error(L, "setmetatable: __gc metamethods are not allowed in scripts");
    }
  }
  lua_settop(L, 2);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, 2, 1);
  return 1;
}

// The string library's pattern matcher backtracks in C, where the count hook does not run: one
// call of string.find('(.-)(.-)(.-)x') over a long subject could run for hours. So the pattern
// functions refuse a call whose worst case, estimated from the pattern's shape, is over
// kMaxPatternSteps: each start position (one if anchored) times, for every item, the choices
// it may backtrack over (n + 1 for *, + and -; 2 for ?; n for %b and back-references). So a
// pattern without repetitions passes over any subject, one with a single unanchored repetition
// over up to 10,000 bytes. Pessimistic by design: it must never let a hang through.
constexpr double kMaxPatternSteps = 1e8;

double PatternSteps(std::string_view p, size_t subject, bool anchorable) {
  double n = static_cast<double>(subject) + 1;
  double steps = 1;
  size_t i = 0;
  if (anchorable && !p.empty() && p[0] == '^') {
    i = 1;
  } else {
    steps *= n;
  }
  while (i < p.size()) {
    char c = p[i];
    if (c == '(' || c == ')') {
      ++i;
      continue;
    }
    if (c == '%' && i + 1 < p.size()) {
      char e = p[i + 1];
      if (e == 'b') {  // %bxy scans up to the whole subject
        steps *= n;
        i += 4;
        continue;
      }
      if (e == 'f') {  // %f[set]: a frontier, one check
        i += 2;
        while (i < p.size() && p[i] != ']') i += (p[i] == '%') ? 2 : 1;
        ++i;
        continue;
      }
      if (e >= '0' && e <= '9') {  // a back-reference compares up to the whole subject
        steps *= n;
        i += 2;
        continue;
      }
      i += 2;
    } else if (c == '[') {
      ++i;
      if (i < p.size() && p[i] == '^') ++i;
      if (i < p.size() && p[i] == ']') ++i;
      while (i < p.size() && p[i] != ']') i += (p[i] == '%') ? 2 : 1;
      ++i;
    } else {
      ++i;
    }
    if (i < p.size()) {
      char q = p[i];
      if (q == '*' || q == '+' || q == '-') {
        steps *= n;
        ++i;
      } else if (q == '?') {
        steps *= 2;
        ++i;
      }
    }
  }
  return steps;
}

// string.find, match, gmatch and gsub, refusing a call whose estimated worst case is too costly;
// upvalue 1 is the library's function, upvalue 2 its name. find with `plain` is not checked.
int BoundedPatternCall(lua_State* L) {
  size_t subject = 0, pattern = 0;
  luaL_checklstring(L, 1, &subject);
  const char* p = luaL_checklstring(L, 2, &pattern);
  const char* name = lua_tostring(L, lua_upvalueindex(2));
  bool is_find = std::strcmp(name, "find") == 0;
  bool plain = is_find && lua_toboolean(L, 4);
  if (!plain) {
    bool anchorable = std::strcmp(name, "gmatch") != 0;
    double steps = PatternSteps(std::string_view(p, pattern), subject, anchorable);
    if (steps > kMaxPatternSteps) {
      return luaL_error(L,
                        "string.%s: pattern '%s' could take too long over %d bytes; use a plain "
                        "find, an anchored pattern or fewer repetitions",
                        name, p, static_cast<int>(subject));
    }
  }
  int args = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, args, LUA_MULTRET);
  return lua_gettop(L);
}

void SetGlobalFunction(lua_State* L, const char* name, lua_CFunction f) {
  lua_pushcfunction(L, f);
  lua_setglobal(L, name);
}

void RemoveGlobal(lua_State* L, const char* name) {
  lua_pushnil(L);
  lua_setglobal(L, name);
}

void OpenSandbox(lua_State* L) {
  static const luaL_Reg kLibraries[] = {
      {LUA_GNAME, luaopen_base},       {LUA_STRLIBNAME, luaopen_string},
      {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
      {LUA_UTF8LIBNAME, luaopen_utf8},
  };
  for (const luaL_Reg& lib : kLibraries) {
    luaL_requiref(L, lib.name, lib.func, 1);
    lua_pop(L, 1);
  }
  for (const char* name : {"dofile", "loadfile", "collectgarbage", "print", "warn"}) {
    RemoveGlobal(L, name);
  }
  lua_getglobal(L, LUA_STRLIBNAME);
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  for (const char* name : {"find", "match", "gmatch", "gsub"}) {
    lua_getfield(L, -1, name);
    lua_pushstring(L, name);
    lua_pushcclosure(L, BoundedPatternCall, 2);
    lua_setfield(L, -2, name);
  }
  lua_pop(L, 1);
  lua_getglobal(L, "setmetatable");
  lua_pushcclosure(L, SafeSetmetatable, 1);
  lua_setglobal(L, "setmetatable");
  SetGlobalFunction(L, "load", TextLoad);
  SetGlobalFunction(L, "pcall", SafePcall);
  SetGlobalFunction(L, "xpcall", SafeXpcall);

  SetGlobalFunction(L, "deadLetter", DeadLetterHandler);
  SetGlobalFunction(L, "drop", DropHandler);
  SetGlobalFunction(L, "reroute", RerouteHandler);
  SetGlobalFunction(L, "retryIn", RetryInHandler);
  SetGlobalFunction(L, "log", LogHandler);
}

void SetString(lua_State* L, const char* field, const std::string& value) {
  lua_pushlstring(L, value.data(), value.size());
  lua_setfield(L, -2, field);
}

void PushFailure(lua_State* L, const RunContext& ctx) {
  const ScriptFailure& f = *ctx.failure;
  lua_createtable(L, 0, 12);
  SetString(L, "id", f.message_id);
  SetString(L, "origin", f.origin);
  SetString(L, "topic", f.topic);
  SetString(L, "subscription", f.subscription);
  lua_createtable(L, 0, static_cast<int>(f.attributes.size()));
  for (const auto& [name, value] : f.attributes) SetString(L, name.c_str(), value);
  lua_setfield(L, -2, "attributes");
  SetString(L, "body", f.body);
  lua_pushboolean(L, f.body_is_text);
  lua_setfield(L, -2, "bodyIsText");
  lua_pushinteger(L, f.delivery_count);
  lua_setfield(L, -2, "deliveryCount");
  const auto& attempts = f.journal.attempts;
  lua_createtable(L, static_cast<int>(attempts.size()), 0);
  for (size_t i = 0; i < attempts.size(); ++i) {
    const store::Attempt& a = attempts[i];
    lua_createtable(L, 0, 6);
    SetString(L, "at", ctx.attempt_times[i]);
    lua_pushinteger(L, a.at);
    lua_setfield(L, -2, "atMs");
    SetString(L, "consumer", a.consumer);
    SetString(L, "outcome", a.outcome);
    SetString(L, "reason", a.reason);
    SetString(L, "error", a.error);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  lua_setfield(L, -2, "attempts");
  lua_pushinteger(L, f.journal.omitted);
  lua_setfield(L, -2, "attemptsOmitted");
}

// The whole run, in protected mode: Run calls it through lua_pcall.
int ProtectedRun(lua_State* L) {
  RunContext* ctx = Ctx(L);
  OpenSandbox(L);
  PushFailure(L, *ctx);
  lua_setglobal(L, "failure");
  lua_pushlstring(L, ctx->failure->cause.data(), ctx->failure->cause.size());
  lua_setglobal(L, "failureCause");
  // From here on, what the script allocates counts; the failure handed to it does not.
  ctx->limit = ctx->used + ctx->limits->max_memory;
  lua_sethook(L, CountHook, LUA_MASKCOUNT, static_cast<int>(ctx->hook_every));
  if (luaL_loadbufferx(L, ctx->source->data(), ctx->source->size(), kChunkName, "t") != LUA_OK) {
    return lua_error(L);
  }
  lua_call(L, 0, 0);
  return 0;
}

// Clips `text` to at most `max` bytes without cutting a UTF-8 sequence.
std::string Clip(std::string text, size_t max) {
  if (text.size() <= max) return text;
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  text.resize(end);
  return text;
}

std::string ByteCount(size_t bytes) {
  if (bytes % (1024 * 1024) == 0) return std::to_string(bytes / (1024 * 1024)) + " MiB";
  if (bytes % 1024 == 0) return std::to_string(bytes / 1024) + " KiB";
  return std::to_string(bytes) + " bytes";
}

// What the script raised. REQUIRES: the error object on top of the stack, and no memory limit
// (lua_tolstring of a number allocates, outside protected mode).
std::string ErrorText(lua_State* L) {
  int type = lua_type(L, -1);
  if (type == LUA_TSTRING || type == LUA_TNUMBER) {
    size_t n = 0;
    const char* text = lua_tolstring(L, -1, &n);
    return std::string(text, n);
  }
  // Not tostring(): a __tostring metamethod would run script code outside protected mode.
  return std::string("script raised an error object of type ") + luaL_typename(L, -1);
}

}  // namespace

std::string_view DecisionKindName(ScriptDecision::Kind kind) {
  switch (kind) {
    case ScriptDecision::Kind::kDeadLetter:
      return "dead-letter";
    case ScriptDecision::Kind::kDrop:
      return "drop";
    case ScriptDecision::Kind::kReroute:
      return "reroute";
    case ScriptDecision::Kind::kRetryIn:
      return "retry-in";
  }
  return "unknown";
}

Result<std::shared_ptr<const ExhaustedScript>> ExhaustedScript::Compile(std::string source,
                                                                        ScriptLimits limits) {
  if (limits.max_instructions <= 0 || limits.max_memory == 0) {
    return Status(ErrorCode::kInvalidArgument, "script limits must be positive");
  }
  if (source.size() > limits.max_source) {
    return Status(ErrorCode::kInvalidArgument, "script is " + ByteCount(source.size()) +
                                                   " long; the limit is " +
                                                   ByteCount(limits.max_source));
  }
  if (!source.empty() && source[0] == LUA_SIGNATURE[0]) {
    return Status(ErrorCode::kInvalidArgument,
                  "script is a precompiled Lua chunk; only Lua source is accepted");
  }
  RunContext ctx;
  lua_State* L = lua_newstate(Allocate, &ctx);
  if (L == nullptr) return Status(ErrorCode::kInternal, "script: cannot create a Lua state");
  *static_cast<RunContext**>(lua_getextraspace(L)) = &ctx;
  int status = luaL_loadbufferx(L, source.data(), source.size(), kChunkName, "t");
  std::string error = status == LUA_OK ? "" : ErrorText(L);
  lua_close(L);
  if (status != LUA_OK) {
    return Status(ErrorCode::kInvalidArgument,
                  "script does not compile: " + Clip(std::move(error), kMaxErrorBytes));
  }
  return std::shared_ptr<const ExhaustedScript>(new ExhaustedScript(std::move(source), limits));
}

ScriptDecision ExhaustedScript::Run(const ScriptFailure& failure) const {
  RunContext ctx;
  ctx.failure = &failure;
  ctx.limits = &limits_;
  ctx.source = &source_;
  ctx.hook_every = std::min<int64_t>(kHookEvery, limits_.max_instructions);
  ctx.attempt_times.reserve(failure.journal.attempts.size());
  for (const store::Attempt& a : failure.journal.attempts) {
    ctx.attempt_times.push_back(FormatTime(a.at));
  }

  ScriptDecision decision;
  lua_State* L = lua_newstate(Allocate, &ctx);
  if (L == nullptr) {
    decision.error = "script: cannot create a Lua state";
    return decision;
  }
  ctx.L = L;
  *static_cast<RunContext**>(lua_getextraspace(L)) = &ctx;
  lua_pushcfunction(L, ProtectedRun);
  int status = lua_pcall(L, 0, 0, 0);

  std::string error;
  if (ctx.over_instructions) {
    error = "script ran too long: more than " + std::to_string(limits_.max_instructions) +
            " instructions";
  } else if (status == LUA_ERRMEM) {
    error = "script used too much memory: more than " + ByteCount(limits_.max_memory);
  } else if (status != LUA_OK) {
    size_t limit = ctx.limit;
    ctx.limit = std::numeric_limits<size_t>::max();
    error = ErrorText(L);
    ctx.limit = limit;
  } else if (!ctx.decided) {
    error =
        "script called no handler: it must call deadLetter(), drop(), reroute(queue) or "
        "retryIn(delay)";
  }
  decision = std::move(ctx.decision);
  // Closing runs the script's finalizers (__gc), still under the hook and the memory limit;
  // what they do no longer counts.
  lua_close(L);

  if (!error.empty()) {
    decision.kind = ScriptDecision::Kind::kDeadLetter;
    decision.queue.clear();
    decision.delay = 0;
    decision.error = Clip(std::move(error), kMaxErrorBytes);
  }
  return decision;
}

}  // namespace redrive::script

#include "engine/queue_config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/text.h"

namespace redrive::engine {
namespace {

using nlohmann::json;

// Found by config_fuzz: a duration in integer milliseconds had no ceiling, while its stored
// form ("7490700049070s") is over the century ParseDuration takes. The create answered 500 and
// the queue could never be loaded again ("stored config of queue q is unreadable").
TEST(QueueConfigJsonTest, MillisecondsOverACenturyAreRefusedLikeTheString) {
  for (const char* field : {"messageTtl", "retention", "visibilityTimeout", "deliveryDelay",
                            "dedupWindow", "deadLetterRetention"}) {
    QueueConfig c;
    Status st = ApplyQueueConfigJson(json{{field, 7490700049070000}}, &c);
    EXPECT_EQ(st.code(), ErrorCode::kInvalidDuration) << field << ": " << st.ToString();
    st = ApplyQueueConfigJson(json{{field, kMaxDuration + 1}}, &c);
    EXPECT_EQ(st.code(), ErrorCode::kInvalidDuration) << field << ": " << st.ToString();
  }
  QueueConfig c;
  Status st = ApplyQueueConfigJson(
      json{{"retryPolicy", {{"backoff", {{"initial", kMaxDuration + 1}}}}}}, &c);
  EXPECT_EQ(st.code(), ErrorCode::kInvalidDuration) << st.ToString();
}

TEST(QueueConfigJsonTest, TheLongestAcceptedDurationsReadBackFromTheirJsonForm) {
  QueueConfig c;
  ASSERT_TRUE(
      ApplyQueueConfigJson(json{{"messageTtl", kMaxDuration}, {"retention", kMaxDuration}}, &c)
          .ok());
  ASSERT_TRUE(ValidateQueueConfig(c).ok());
  json form = QueueConfigToJson(c);
  EXPECT_EQ(form["messageTtl"], "36500d");
  QueueConfig again;
  Status st = ApplyQueueConfigJson(form, &again);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(QueueConfigToJson(again), form);
}

TEST(QueueConfigJsonTest, ASchedulePresetOrListReplacesTheBackoffAndRoundTrips) {
  QueueConfig c;
  ASSERT_TRUE(ApplyQueueConfigJson(json{{"retryPolicy", {{"schedule", "akamai"}}}}, &c).ok());
  EXPECT_EQ(c.retry.schedule,
            (std::vector<DurationMs>{3'000, 30'000, 300'000, 3'600'000, 86'400'000}));
  EXPECT_EQ(c.retry.max_deliveries, 6);
  ASSERT_TRUE(ValidateQueueConfig(c).ok());
  json form = QueueConfigToJson(c);
  EXPECT_EQ(form["retryPolicy"]["schedule"], "akamai");
  EXPECT_FALSE(form["retryPolicy"].contains("backoff"));
  QueueConfig again;
  ASSERT_TRUE(ApplyQueueConfigJson(form, &again).ok());
  EXPECT_EQ(again.retry.schedule, c.retry.schedule);
  EXPECT_EQ(QueueConfigToJson(again), form);

  QueueConfig list;
  ASSERT_TRUE(
      ApplyQueueConfigJson(json{{"retryPolicy", {{"schedule", {"1s", "2m", 500}}}}}, &list).ok());
  EXPECT_EQ(list.retry.max_deliveries, 4);
  form = QueueConfigToJson(list);
  EXPECT_EQ(form["retryPolicy"]["schedule"], (json{"1s", "2m", "500ms"}));
  QueueConfig list_again;
  ASSERT_TRUE(ApplyQueueConfigJson(form, &list_again).ok());
  EXPECT_EQ(list_again.retry.schedule, list.retry.schedule);
}

TEST(QueueConfigJsonTest, ScheduleMistakesNameTheField) {
  struct Case {
    json retry;
    ErrorCode code;
    std::string names;
  };
  std::vector<Case> cases = {
      {{{"schedule", "hourly"}}, ErrorCode::kInvalidArgument, "known: \"akamai\""},
      {{{"schedule", json::array()}}, ErrorCode::kInvalidArgument, "retryPolicy.schedule"},
      {{{"schedule", 5}}, ErrorCode::kInvalidArgument, "retryPolicy.schedule"},
      {{{"schedule", {"1s", "8d"}}}, ErrorCode::kInvalidArgument, "retryPolicy.schedule[1]"},
      {{{"schedule", {"1s", "soon"}}}, ErrorCode::kInvalidDuration, "retryPolicy.schedule[1]"},
      {{{"schedule", "akamai"}, {"backoff", {{"initial", "1s"}}}},
       ErrorCode::kInvalidArgument,
       "exclude each other"},
      {{{"schedule", "akamai"}, {"maxDeliveries", 3}}, ErrorCode::kInvalidArgument, "must be 6"},
  };
  json too_long = json::array();
  for (size_t i = 0; i <= kMaxScheduleLength; ++i) too_long.push_back("1s");
  cases.push_back({{{"schedule", too_long}}, ErrorCode::kInvalidArgument, "1 to 100"});
  for (const auto& c : cases) {
    QueueConfig config;
    Status st = ApplyQueueConfigJson(json{{"retryPolicy", c.retry}}, &config);
    EXPECT_EQ(st.code(), c.code) << c.retry.dump() << ": " << st.ToString();
    EXPECT_NE(st.message().find(c.names), std::string::npos) << st.message();
  }
}

TEST(QueueConfigJsonTest, ChangingAScheduledQueueKeepsItsRulesConsistent) {
  QueueConfig c;
  ASSERT_TRUE(ApplyQueueConfigJson(json{{"retryPolicy", {{"schedule", "fast"}}}}, &c).ok());
  // maxDeliveries alone must still match the schedule.
  EXPECT_EQ(ApplyQueueConfigJson(json{{"retryPolicy", {{"maxDeliveries", 9}}}}, &c).code(),
            ErrorCode::kInvalidArgument);
  QueueConfig other = c;
  // A backoff replaces the schedule; maxDeliveries is what it was.
  ASSERT_TRUE(
      ApplyQueueConfigJson(json{{"retryPolicy", {{"backoff", {{"initial", "2s"}}}}}}, &other).ok());
  EXPECT_TRUE(other.retry.schedule.empty());
  EXPECT_EQ(other.retry.max_deliveries, 6);
  EXPECT_EQ(QueueConfigToJson(other)["retryPolicy"]["backoff"]["initial"], "2s");
  // null removes it too.
  ASSERT_TRUE(ApplyQueueConfigJson(json{{"retryPolicy", {{"schedule", nullptr}}}}, &c).ok());
  EXPECT_TRUE(c.retry.schedule.empty());
  EXPECT_TRUE(ValidateQueueConfig(c).ok());
}

TEST(QueueConfigJsonTest, AScriptIsCompiledWhenSetAndShownBackAsItsSource) {
  QueueConfig c;
  ASSERT_TRUE(ApplyQueueConfigJson(
                  json{{"retryPolicy", {{"onExhausted", "script"}, {"script", "drop()"}}}}, &c)
                  .ok());
  ASSERT_NE(c.retry.script, nullptr);
  ASSERT_TRUE(ValidateQueueConfig(c).ok());
  json form = QueueConfigToJson(c);
  EXPECT_EQ(form["retryPolicy"]["onExhausted"], "script");
  EXPECT_EQ(form["retryPolicy"]["script"], "drop()");
  QueueConfig again;
  ASSERT_TRUE(ApplyQueueConfigJson(form, &again).ok());
  EXPECT_EQ(QueueConfigToJson(again), form);
  // Without a script the attribute is there, null; null removes a script.
  EXPECT_TRUE(QueueConfigToJson(QueueConfig{})["retryPolicy"]["script"].is_null());
  ASSERT_TRUE(ApplyQueueConfigJson(
                  json{{"retryPolicy", {{"onExhausted", "drop"}, {"script", nullptr}}}}, &c)
                  .ok());
  EXPECT_EQ(c.retry.script, nullptr);
  EXPECT_TRUE(ValidateQueueConfig(c).ok());
}

TEST(QueueConfigJsonTest, ScriptMistakesNameTheFieldAndTheLine) {
  struct Case {
    json retry;
    std::string names;
  };
  const std::vector<Case> cases = {
      {{{"script", "if x then\n  drop(\nend"}},
       "'retryPolicy.script': script does not compile: script:3:"},
      {{{"script", std::string("\x1bLuaT\x00", 6)}}, "precompiled Lua chunk"},
      {{{"script", std::string(64 * 1024 + 1, ' ')}}, "the limit is"},
      {{{"script", ""}}, "'retryPolicy.script' must be the script's Lua source text, or null"},
      {{{"script", 42}}, "'retryPolicy.script' must be"},
      {{{"onExhausted", "lua"}}, "\"script\""},
  };
  for (const auto& c : cases) {
    QueueConfig config;
    Status st = ApplyQueueConfigJson(json{{"retryPolicy", c.retry}}, &config);
    EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument) << c.retry.dump() << ": " << st.ToString();
    EXPECT_NE(st.message().find(c.names), std::string::npos) << st.message();
  }
  // Text that is not UTF-8 (only a config file's script_file can give it) is refused.
  QueueConfig config;
  Status st = ApplyQueueConfigJson(
      json{{"retryPolicy", {{"script", std::string("-- caf\xe9\ndrop()")}}}}, &config);
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find("UTF-8"), std::string::npos) << st.message();

  // onExhausted script and a script go together.
  config = QueueConfig{};
  config.retry.on_exhausted = ExhaustedAction::kScript;
  st = ValidateQueueConfig(config);
  EXPECT_NE(st.message().find("'retryPolicy.script' is required with onExhausted \"script\""),
            std::string::npos)
      << st.ToString();
  ASSERT_TRUE(ApplyQueueConfigJson(json{{"retryPolicy", {{"script", "drop()"}}}}, &config).ok());
  config.retry.on_exhausted = ExhaustedAction::kDrop;
  st = ValidateQueueConfig(config);
  EXPECT_NE(st.message().find("'retryPolicy.script' is only for onExhausted \"script\""),
            std::string::npos)
      << st.ToString();
}

}  // namespace
}  // namespace redrive::engine

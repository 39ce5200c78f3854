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

}  // namespace
}  // namespace redrive::engine

// EngineFixture: the set-up the engine's tests share: a fresh SQLite store in a temporary
// directory, an Engine on a manual clock and a seeded random source, and the tenant "acme".
// Tests only (not part of the engine's interface).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "engine/engine.h"

namespace redrive::engine {

class EngineFixture : public ::testing::Test {
 protected:
  explicit EngineFixture(uint64_t seed = 42) : random_(seed) {}

  void SetUp() override {
    dir_ = ::testing::TempDir() + "/engine-" + std::to_string(getpid()) + "-" +
           std::to_string(counter_++);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    store_ = store::OpenStore(dir_ + "/db").value();
    engine_ = std::make_unique<Engine>(*store_, clock_, random_);
    ASSERT_TRUE(engine_->tenancy().CreateTenant("acme").ok());
  }
  void TearDown() override {
    engine_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::string dir_;
  ManualClock clock_;
  SeededRandom random_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Engine> engine_;

 private:
  static inline int counter_ = 0;
};

}  // namespace redrive::engine

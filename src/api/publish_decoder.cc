#include "api/publish_decoder.h"

#include <simdjson.h>

#include <memory>
#include <mutex>

#include "common/text.h"

namespace redrive::api {

namespace {

// simdjson parsers keep their buffers between documents. A few are kept idle for reuse; a
// connection thread takes one for the length of a parse.
class ParserPool {
 public:
  std::unique_ptr<simdjson::dom::parser> Take() {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!idle_.empty()) {
        auto p = std::move(idle_.back());
        idle_.pop_back();
        return p;
      }
    }
    return std::make_unique<simdjson::dom::parser>(kFastPublishMaxBytes);
  }
  void Give(std::unique_ptr<simdjson::dom::parser> p) {
    std::lock_guard<std::mutex> l(mu_);
    if (idle_.size() < kMaxIdle) idle_.push_back(std::move(p));
  }

 private:
  static constexpr size_t kMaxIdle = 8;
  std::mutex mu_;
  std::vector<std::unique_ptr<simdjson::dom::parser>> idle_;  // GUARDED_BY(mu_)
};

ParserPool& Pool() {
  static ParserPool* pool = new ParserPool();  // never destroyed: used until the process ends
  return *pool;
}

// A string member, kept only when it is valid UTF-8 (simdjson validates the document, but a
// \u escape can still spell a lone surrogate, which the general decoder refuses).
bool GetUtf8(simdjson::dom::element e, std::string* out) {
  std::string_view s;
  if (e.get_string().get(s) != simdjson::SUCCESS || !IsValidUtf8(s)) return false;
  out->assign(s);
  return true;
}

std::optional<engine::NewMessage> FastMessage(simdjson::dom::element e) {
  simdjson::dom::object obj;
  if (e.get_object().get(obj) != simdjson::SUCCESS) return std::nullopt;
  engine::NewMessage m;
  bool body = false, attributes = false, key = false, base64 = false;
  for (auto field : obj) {
    if (field.key == "body") {
      if (body || !GetUtf8(field.value, &m.body)) return std::nullopt;
      body = true;
    } else if (field.key == "attributes") {
      simdjson::dom::object attrs;
      if (attributes || field.value.get_object().get(attrs) != simdjson::SUCCESS) {
        return std::nullopt;
      }
      for (auto kv : attrs) {
        std::string value;
        if (!IsValidUtf8(kv.key) || !GetUtf8(kv.value, &value)) return std::nullopt;
        if (!m.attributes.emplace(std::string(kv.key), std::move(value)).second) {
          return std::nullopt;  // a repeated name: the general decoder keeps the last
        }
      }
      attributes = true;
    } else if (field.key == "idempotencyKey") {
      if (key || !GetUtf8(field.value, &m.idempotency_key)) return std::nullopt;
      key = true;
    } else if (field.key == "base64") {
      bool flag = true;
      if (base64 || field.value.get_bool().get(flag) != simdjson::SUCCESS || flag) {
        return std::nullopt;
      }
      base64 = true;
    } else {
      return std::nullopt;
    }
  }
  if (!body) return std::nullopt;
  return m;
}

}  // namespace

std::optional<std::vector<engine::NewMessage>> DecodePublishFast(std::string_view body) {
  if (body.size() > kFastPublishMaxBytes) return std::nullopt;
  auto parser = Pool().Take();
  std::optional<std::vector<engine::NewMessage>> out;
  [&] {
    simdjson::dom::element root;
    if (parser->parse(body.data(), body.size()).get(root) != simdjson::SUCCESS) return;
    simdjson::dom::object top;
    if (root.get_object().get(top) != simdjson::SUCCESS) return;
    simdjson::dom::array items;
    bool seen = false;
    for (auto field : top) {
      if (seen || field.key != "messages") return;
      if (field.value.get_array().get(items) != simdjson::SUCCESS) return;
      seen = true;
    }
    if (!seen || items.size() == 0) return;
    std::vector<engine::NewMessage> messages;
    messages.reserve(items.size());
    for (auto item : items) {
      auto m = FastMessage(item);
      if (!m) return;
      messages.push_back(std::move(*m));
    }
    out = std::move(messages);
  }();
  Pool().Give(std::move(parser));
  return out;
}

Result<std::vector<engine::NewMessage>> DecodePublishGeneral(json& body) {
  REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"messages"}));
  auto it = body.find("messages");
  if (it == body.end()) return Status(ErrorCode::kMissingField, "'messages' is required");
  if (!it->is_array()) return Status(ErrorCode::kInvalidArgument, "'messages' must be an array");
  std::vector<engine::NewMessage> messages;
  messages.reserve(it->size());
  size_t i = 0;
  for (auto& m : *it) {
    std::string where = "messages[" + std::to_string(i++) + "].";
    if (!m.is_object()) return Status(ErrorCode::kInvalidArgument, where + " must be an object");
    REDRIVE_RETURN_IF_ERROR(
        OnlyFields(m, {"body", "base64", "attributes", "idempotencyKey", "delay"}, where));
    engine::NewMessage nm;
    auto b = m.find("body");
    if (b == m.end() || !b->is_string()) {
      return Status(ErrorCode::kMissingField, "'" + where + "body' must be a string");
    }
    REDRIVE_ASSIGN_OR_RETURN(auto is_b64, GetBool(m, "base64"));
    if (is_b64.value_or(false)) {
      REDRIVE_ASSIGN_OR_RETURN(nm.body, Base64Decode(b->get_ref<const std::string&>()));
    } else {
      nm.body = std::move(b->get_ref<std::string&>());
    }
    if (auto a = m.find("attributes"); a != m.end() && !a->is_null()) {
      if (!a->is_object()) {
        return Status(ErrorCode::kInvalidArgument,
                      "'" + where + "attributes' must be an object of strings");
      }
      for (auto kv = a->begin(); kv != a->end(); ++kv) {
        if (!kv->is_string()) {
          return Status(ErrorCode::kInvalidArgument,
                        "'" + where + "attributes' values must be strings");
        }
        nm.attributes.emplace(kv.key(), kv->get<std::string>());
      }
    }
    REDRIVE_ASSIGN_OR_RETURN(auto key, GetString(m, "idempotencyKey"));
    nm.idempotency_key = key.value_or("");
    REDRIVE_ASSIGN_OR_RETURN(nm.delay, GetDuration(m, "delay"));
    messages.push_back(std::move(nm));
  }
  return messages;
}

Result<std::vector<engine::NewMessage>> DecodePublish(std::string_view body) {
  if (auto fast = DecodePublishFast(body)) return std::move(*fast);
  REDRIVE_ASSIGN_OR_RETURN(json parsed, ParseObject(body));
  return DecodePublishGeneral(parsed);
}

}  // namespace redrive::api

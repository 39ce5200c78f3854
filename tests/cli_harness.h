// The CLI tests' harness: runs the real `redrive` client binary (RunRedrive, with a pty for
// stderr on request) against a real server, and CliTest, the fixture with a server, tenant acme
// and a HOME of its own. Used by cli_test.cc.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "tests/harness.h"

namespace redrive::testing {

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
  json Json() const { return json::parse(out, nullptr, false); }
};

inline std::string Describe(const CliResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\n--- stdout\n" + r.out + "--- stderr\n" + r.err;
}

// Opens a pseudo-terminal: fds[0] the master (read by the test), fds[1] the terminal side.
inline bool OpenPty(int fds[2]) {
  int master = posix_openpt(O_RDWR | O_NOCTTY);
  if (master < 0) return false;
  if (grantpt(master) != 0 || unlockpt(master) != 0) {
    close(master);
    return false;
  }
  int terminal = open(ptsname(master), O_RDWR | O_NOCTTY);
  if (terminal < 0) {
    close(master);
    return false;
  }
  fds[0] = master;
  fds[1] = terminal;
  return true;
}

// Runs `redrive args...` with exactly `env` as its environment and `input` on stdin; kills it
// after 20 s. Reads stdout and stderr while writing stdin, so no pipe can fill up and block.
// With `stderr_tty` the client's stderr is a terminal (a pty) instead of a pipe.
inline CliResult RunRedrive(const std::vector<std::string>& args,
                            const std::map<std::string, std::string>& env, const std::string& input,
                            bool stderr_tty = false) {
  CliResult result;
  int in[2], out[2], err[2];
  if (pipe(in) != 0 || pipe(out) != 0 || (stderr_tty ? !OpenPty(err) : pipe(err) != 0)) {
    ADD_FAILURE() << "pipe failed";
    return result;
  }
  std::vector<std::string> argv_s = {RedriveBinary()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<std::string> env_s;
  for (const auto& [k, v] : env) env_s.push_back(k + "=" + v);

  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) close(fd);
    std::vector<char*> argv, envp;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  fcntl(in[1], F_SETFL, O_NONBLOCK);
  size_t written = 0;
  if (input.empty()) {
    close(in[1]);
    in[1] = -1;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  int open_outputs = 2;
  while (open_outputs > 0 && std::chrono::steady_clock::now() < deadline) {
    pollfd fds[3] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {in[1], POLLOUT, 0}};
    if (poll(fds, in[1] >= 0 ? 3 : 2, 100) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[65536];
      ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(n));
      } else {
        close(fds[i].fd);
        (i == 0 ? out[0] : err[0]) = -1;
        --open_outputs;
      }
    }
    if (in[1] >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t n = write(in[1], input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if (n < 0 || written == input.size()) {
        close(in[1]);
        in[1] = -1;
      }
    }
  }
  for (int fd : {in[1], out[0], err[0]}) {
    if (fd >= 0) close(fd);
  }
  if (open_outputs > 0) kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// "key: value" from the client's detail output, or "" when the key is absent.
inline std::string Field(const std::string& out, const std::string& key) {
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(key + ":", 0) != 0) continue;
    size_t start = line.find_first_not_of(' ', key.size() + 1);
    return start == std::string::npos ? "" : line.substr(start);
  }
  return "";
}

// A URL where nothing listens: a port that was just bound and released.
inline std::string ClosedUrl() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  close(fd);
  return "http://127.0.0.1:" + std::to_string(port);
}

// A decoder of its own, so the test does not check the client with the client's codec.
inline std::string Base64Decode(const std::string& text) {
  static const std::string kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t bits = 0;
  int nbits = 0;
  for (char c : text) {
    if (c == '=') break;
    size_t v = kAlphabet.find(c);
    if (v == std::string::npos) return "<invalid base64>";
    bits = (bits << 6) | static_cast<uint32_t>(v);
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      out.push_back(static_cast<char>((bits >> nbits) & 0xFF));
    }
  }
  return out;
}

inline void WriteFile(const std::string& path, const std::string& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

class CliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { signal(SIGPIPE, SIG_IGN); }

  void SetUp() override {
    server_ = std::make_unique<ServerProcess>();
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    op_token_ = server_->operator_token();
    HttpClient op(server_->url(), op_token_);
    CreateTenant(op, "acme");
    home_ = MakeTempDir();
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(home_, ec);
  }

  // An environment with no REDRIVE_* variables and a HOME without a config file, plus `extra`.
  std::map<std::string, std::string> Env(const std::map<std::string, std::string>& extra = {}) {
    std::map<std::string, std::string> env = {{"HOME", home_}, {"PATH", "/usr/bin:/bin"}};
    for (const auto& [k, v] : extra) env[k] = v;
    return env;
  }
  // Runs the client as the operator against tenant acme, connection given by flags.
  CliResult Cli(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.end(), {"--url", server_->url(), "--token", op_token_, "--tenant", "acme"});
    return RunRedrive(args, Env(), input);
  }
  CliResult Raw(const std::vector<std::string>& args,
                const std::map<std::string, std::string>& env = {}, const std::string& input = "") {
    return RunRedrive(args, Env(env), input);
  }

  void MakeQueue(const std::string& name) {
    HttpClient op(server_->url(), op_token_);
    CreateQueue(op, "acme", name);
  }

  // As Cli(), with the client's stderr a terminal.
  CliResult CliTty(std::vector<std::string> args) {
    args.insert(args.end(), {"--url", server_->url(), "--token", op_token_, "--tenant", "acme"});
    return RunRedrive(args, Env(), "", true);
  }

  // Publishes one message per cause to `queue` (with the matching entry of `attributes`, if
  // any), receives them and nacks each with --dead-letter semantics and its cause as the error.
  // Returns the message ids in publish order. Plain HTTP: this is setup, not what is tested.
  std::vector<std::string> DeadLetter(const std::string& queue,
                                      const std::vector<std::string>& causes,
                                      const std::vector<json>& attributes = {}) {
    HttpClient op(server_->url(), op_token_);
    const std::string base = "/v1/tenants/acme/queues/" + queue;
    json messages = json::array();
    for (size_t i = 0; i < causes.size(); ++i) {
      json m = {{"body", "m" + std::to_string(i)}};
      if (i < attributes.size()) m["attributes"] = attributes[i];
      messages.push_back(m);
    }
    auto sent = op.Post(base + "/messages", {{"messages", messages}});
    EXPECT_EQ(sent.status, 201) << sent.body;
    std::vector<std::string> ids;
    std::map<std::string, std::string> cause_of;
    for (size_t i = 0; i < causes.size() && sent.status == 201; ++i) {
      ids.push_back(sent.Json()["messages"][i]["id"]);
      cause_of[ids.back()] = causes[i];
    }
    json nacks = json::array();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (nacks.size() < ids.size() && std::chrono::steady_clock::now() < deadline) {
      auto got = op.Post(base + "/receive",
                         {{"maxMessages", static_cast<int>(ids.size() - nacks.size())}});
      json answer = got.Json();
      for (const auto& m : answer["messages"]) {
        nacks.push_back(
            {{"receipt", m["receipt"]}, {"deadLetter", true}, {"error", cause_of[m["id"]]}});
      }
    }
    EXPECT_EQ(nacks.size(), ids.size());
    auto nacked = op.Post(base + "/nack", {{"nacks", nacks}});
    EXPECT_EQ(nacked.status, 200) << nacked.body;
    return ids;
  }

  // The data lines of the first table in `out`: the header dropped, up to a blank line or the
  // "total:" and "next cursor:" lines under it.
  static std::vector<std::string> Rows(const std::string& out) {
    std::vector<std::string> rows;
    std::istringstream lines(out);
    std::string line;
    std::getline(lines, line);
    while (std::getline(lines, line)) {
      if (line.empty() || line.rfind("total: ", 0) == 0 || line.rfind("next cursor: ", 0) == 0) {
        break;
      }
      rows.push_back(line);
    }
    return rows;
  }

  // Receives one message as JSON and returns it; fails the test when there is none.
  json ReceiveOne(const std::string& queue) {
    CliResult r = Cli({"receive", queue, "--json"});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    json messages = r.Json()["messages"];
    EXPECT_EQ(messages.size(), 1u) << Describe(r);
    return messages.empty() ? json::object() : messages[0];
  }

  std::unique_ptr<ServerProcess> server_;
  std::string op_token_;
  std::string home_;
};

}  // namespace redrive::testing

#pragma once

// dlwpt-serve's HTTP/1.1 layer, on Boost.Beast: connections, framing, limits and deadlines,
// with no knowledge of models. The application sees each request twice: its head (method,
// path, headers) as soon as it is read, to refuse or admit it before the body arrives, then
// the whole request, on a worker thread, to answer it.
//
// Threads: one I/O thread serves every connection with asynchronous reads and writes, so a
// slow or idle client costs a socket and a few kilobytes, never a thread. Answers are computed
// on a fixed pool of worker threads (`worker_threads`), which may block (on a model's result).
//
// What a client can hold is bounded: the header's size and total time (a client trickling a
// byte a second is dropped when the header's time is up, whatever each byte's delay), the
// body's size and total time (its limit from the application, at least `min_body_rate` bytes a
// second), the time to take an answer, the connections open at once, the idle time and the
// requests of a keep-alive connection. Pipelined requests are answered in order; a client that
// half-closes after its request gets its answer. An answer given before a body was read, or
// after a malformed request, closes the connection, so unread bytes are never taken for the
// next request.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <torch/arg.h>

namespace dlwpt::serve::http {

/// Header fields in the order received; names compare without case.
class Fields {
 public:
  void add(std::string name, std::string value) { fields_.emplace_back(std::move(name), std::move(value)); }
  /// The first field named so, or "" when there is none.
  std::string get(std::string_view name) const;
  bool has(std::string_view name) const { return count(name) > 0; }
  size_t count(std::string_view name) const;
  void set(std::string_view name, std::string value);
  void erase(std::string_view name);
  const std::vector<std::pair<std::string, std::string>>& all() const { return fields_; }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

struct Request {
  std::string method;
  std::string target;  ///< as sent: the path and any query
  std::string path;    ///< the target without its query
  Fields headers;
  std::string body;  ///< inflated when it came with Content-Encoding gzip or deflate
};

struct Response {
  int status = 200;
  Fields headers;
  std::string body;
  /// The connection closes after this answer (also said in its Connection header).
  bool close = false;

  void set_content(std::string content, const std::string& type) {
    body = std::move(content);
    headers.set("Content-Type", type);
  }
};

/// What the application decides from a request's head, before its body is read.
struct Admission {
  /// An answer now: the body, if any, is not read, and the connection closes after it.
  std::optional<Response> answer;
  /// The body's limit in bytes (after inflation); beyond it the request gets 413.
  size_t body_limit = 0;
  /// Carried to the handler with the request (what admission took, the request's clock).
  std::shared_ptr<void> context;
};

struct HttpServerOptions {
  TORCH_ARG(std::string, host) = "127.0.0.1";
  TORCH_ARG(int, port) = 0;
  /// Threads that compute answers (they may wait for a model).
  TORCH_ARG(int, worker_threads) = 64;
  /// Connections open at once; a connection beyond is answered 503 and closed.
  TORCH_ARG(int, max_connections) = 512;
  /// A request's line and headers, in bytes: 414 or 431 beyond.
  TORCH_ARG(size_t, max_header_bytes) = size_t{16} << 10;
  /// Time for a whole header, from its first byte, and the least for a body or an answer.
  TORCH_ARG(std::chrono::milliseconds, io_timeout) = std::chrono::seconds(10);
  /// Bodies and answers get io_timeout plus their size at this rate (bytes per second).
  TORCH_ARG(size_t, min_body_rate) = size_t{1} << 20;
  /// An idle keep-alive connection closes after this, and after this many requests.
  TORCH_ARG(std::chrono::milliseconds, keep_alive_timeout) = std::chrono::seconds(5);
  TORCH_ARG(int, keep_alive_requests) = 1000;
};

class HttpServer {
 public:
  /// On the I/O thread, once a request's head is read: must not block. Decides the body limit
  /// or answers at once (refusals: 401, 404, 413, 503...).
  using Admit = std::function<Admission(const Request&)>;
  /// On a worker thread, with the whole request: fills the answer. Should not throw (what
  /// escapes becomes a 500 and closes the connection).
  using Handle = std::function<void(Request&, const std::shared_ptr<void>& context, Response&)>;
  /// The body of the layer's own refusals (malformed requests, limits, timeouts): status and
  /// reason to body and content type.
  using ErrorBody = std::function<std::pair<std::string, std::string>(int status, const std::string& reason)>;
  /// Run first on every thread the server starts (thread priorities, torch threads).
  using ThreadStart = std::function<void()>;

  HttpServer(HttpServerOptions options, Admit admit, Handle handle, ErrorBody error_body,
             ThreadStart on_thread_start = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Binds and listens; returns the port (the free one taken for port 0). Throws
  /// std::runtime_error naming the address when it cannot.
  int bind();
  /// Serves on this thread until stop().
  void serve();
  /// Stops accepting and ends serve(); requests still computing finish on their workers, and
  /// their answers are dropped. Safe from any thread.
  void stop();
  /// Connections with a request being read, computed or answered (not idle ones).
  int64_t busy_connections() const;

  class Impl;  // in http_server.cpp, with its connections

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace dlwpt::serve::http

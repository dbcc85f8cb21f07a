#pragma once

// dlwpt-serve's HTTP front: the book's endpoints (POST /predict, PUT /image), the KServe v2 /
// Triton protocol (/v2/...), /metrics, on cpp-httplib with its runtime limits, in front of one
// batching runner per model (served_model.h).
//
// Threads: cpp-httplib serves each connection on one thread of a fixed pool (`http_threads`);
// those threads parse, decode and encode (images, JSON, tensors) in parallel, run torch with a
// single intra-op thread, and wait for the model's runner; connections beyond the pool wait
// (up to `max_waiting_connections`) and beyond that are answered 503 at once. Each model's
// runner is one long-lived thread with the intra-op threads set once for the process.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <torch/arg.h>

#include "apps/serve/metrics.h"
#include "apps/serve/scan_service.h"
#include "apps/serve/served_model.h"

namespace httplib {
class ContentReader;
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace dlwpt::serve {

struct ServerOptions {
  /// Address to listen on; 127.0.0.1 unless the server is meant to be reached from outside.
  TORCH_ARG(std::string, host) = "127.0.0.1";
  /// 0 takes a free port (printed when listening).
  TORCH_ARG(int, port) = 8000;
  /// Connections served at once (one thread each, mostly waiting on the network).
  TORCH_ARG(int, http_threads) = 256;
  /// Connections that may wait for a thread; more are answered 503 at once.
  TORCH_ARG(int, max_waiting_connections) = 256;
  /// Largest request body (413 beyond), and largest scan for /v1/ct/nodules.
  TORCH_ARG(size_t, max_body_bytes) = size_t{64} << 20;
  TORCH_ARG(size_t, max_scan_bytes) = size_t{512} << 20;
  /// Scans of more voxels are refused (413): 2^27 is 512 slices of 512 x 512.
  TORCH_ARG(int64_t, max_scan_voxels) = int64_t{1} << 27;
  /// A request's deadline unless its `Request-Timeout-Ms` header asks for less (504 after).
  TORCH_ARG(std::chrono::milliseconds, request_timeout) = std::chrono::seconds(30);
  /// Read and write timeouts of a connection: slow clients are dropped after this.
  TORCH_ARG(std::chrono::seconds, io_timeout) = std::chrono::seconds(10);
  /// Idle keep-alive connections close after this, and after this many requests.
  TORCH_ARG(std::chrono::seconds, keep_alive_timeout) = std::chrono::seconds(5);
  TORCH_ARG(int, keep_alive_requests) = 1000;
  /// On SIGTERM, how long queued and running requests may take before the server exits.
  TORCH_ARG(std::chrono::milliseconds, drain_timeout) = std::chrono::seconds(25);
  /// When set, every request but the health checks needs `Authorization: Bearer <key>`.
  TORCH_ARG(std::string, api_key) = "";
  /// Images are refused (413) from their header when larger than this.
  TORCH_ARG(int64_t, max_image_pixels) = 25'000'000;
  /// PUT /image scales pictures down to this longer side before the generator (0: never).
  TORCH_ARG(int64_t, image_max_side) = 512;
  TORCH_ARG(int, jpeg_quality) = 90;
  /// JSON lines, one per inference request, appended here ("" for none).
  TORCH_ARG(std::string, prediction_log) = "";
};

class PredictionLog;
class DecodeSlots;

class Server {
 public:
  /// `scans` (may be null) serves /v1/ct/nodules.
  Server(ServerOptions options, std::vector<std::unique_ptr<ServedModel>> models,
         std::unique_ptr<ScanService> scans, std::shared_ptr<Metrics> metrics);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds the address; returns the port (the free one taken for port 0). Throws on failure.
  int bind();
  /// Serves until `stop`; returns then.
  void serve();
  /// Readiness false, new inference requests 503 (with Connection: close), then waits until
  /// the requests running or being received finish and idle keep-alive connections close
  /// (their timeout), or the drain timeout passes; stops the listener and the models.
  /// Returns whether every request running got its answer. Safe from another thread (the
  /// signal watcher).
  bool drain_and_stop();

  bool ready() const { return !draining_; }

 private:
  class Request;

  void add_routes();
  void stop_models();
  // Answers a request: with `admit`, takes room in its model's admission limit before the body
  // is read (through `reader`, when there is one), or refuses with 503; then `handle` runs.
  // What they throw becomes the status and error body; the answer is counted and logged.
  void answer(const httplib::Request& http, httplib::Response& response, const std::string& endpoint,
              const httplib::ContentReader* reader, bool admit,
              const std::function<void(Request&, httplib::Response&)>& handle);
  void add_inference_route(
      const std::string& method, const std::string& pattern, const std::string& endpoint,
      const std::function<void(const httplib::Request&, Request&, httplib::Response&)>& handle);
  // The prediction log's line for an answered request (JSON).
  static std::string prediction_line(const Request& request, const std::string& endpoint, int status,
                                     const std::string& error, Clock::duration duration);
  ServedModel& model_named(const std::string& name) const;
  // The admission limit of the model (or the CT scan service) an inference path asks for,
  // whose name it stores in `model`; RequestError 404 when none is served.
  AdmissionLimit& admission_for(const std::string& path, std::string& model) const;
  ServedModel& model_of_kind(ModelKind kind, const char* endpoint) const;
  ModelResult infer(ServedModel& model, torch::Tensor input, Request& request);
  template <typename Result>
  Result await_result(const std::string& model, const std::function<std::future<Result>()>& submit,
                      const Request& request);

  void predict(const httplib::Request& http, httplib::Response& response, Request& request);
  void zebra_image(const httplib::Request& http, httplib::Response& response, Request& request);
  void v2_infer(const httplib::Request& http, httplib::Response& response, Request& request);
  void v2_metadata(const std::string& name, httplib::Response& response) const;
  void ct_nodules(httplib::Response& response, Request& request);

  ServerOptions options_;
  std::vector<std::unique_ptr<ServedModel>> models_;
  std::unique_ptr<ScanService> scans_;
  std::shared_ptr<Metrics> metrics_;
  std::unique_ptr<PredictionLog> log_;
  std::unique_ptr<httplib::Server> http_;
  std::unique_ptr<DecodeSlots> decode_slots_;  // pictures decoded and large JSON parsed at once: one per core
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> in_flight_{0};  // requests in their handler
  std::shared_ptr<std::atomic<int64_t>> busy_connections_ = std::make_shared<std::atomic<int64_t>>(0);
  std::atomic<uint64_t> request_counter_{0};
  std::mutex stop_mutex_;
  int listening_socket_ = -1;
};

}  // namespace dlwpt::serve

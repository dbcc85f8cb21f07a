#pragma once

// dlwpt-serve's endpoints: the book's (POST /predict, PUT /image), the KServe v2 / Triton
// protocol (/v2/...), /v1/ct/nodules and /metrics, on the HTTP layer of http_server.h, in front
// of one batching runner per model (served_model.h).
//
// Threads: one I/O thread reads and writes every connection; a fixed pool of `http_threads`
// workers parse, decode and encode (images, JSON, tensors) in parallel, run torch with a single
// intra-op thread, and wait for the model's runner. A request is admitted or refused (401, 404,
// 503 when its model is full) from its head, before its body is read. Each model's runner is
// one long-lived thread with the intra-op threads set once for the process.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/arg.h>

#include "apps/serve/metrics.h"
#include "apps/serve/scan_service.h"
#include "apps/serve/served_model.h"

namespace dlwpt::serve {

namespace http {
class HttpServer;
struct Request;
struct Response;
struct Admission;
}  // namespace http

struct ServerOptions {
  /// Address to listen on; 127.0.0.1 unless the server is meant to be reached from outside.
  TORCH_ARG(std::string, host) = "127.0.0.1";
  /// 0 takes a free port (printed when listening).
  TORCH_ARG(int, port) = 8000;
  /// Requests answered at once: threads that decode, encode and wait for the models.
  TORCH_ARG(int, http_threads) = 256;
  /// Connections that may be open beyond http_threads (idle, sending, or waiting for a
  /// thread); one more is answered 503 and closed.
  TORCH_ARG(int, max_waiting_connections) = 256;
  /// Largest request body (413 beyond), and largest scan for /v1/ct/nodules.
  TORCH_ARG(size_t, max_body_bytes) = size_t{64} << 20;
  TORCH_ARG(size_t, max_scan_bytes) = size_t{512} << 20;
  /// Scans of more voxels are refused (413): 2^27 is 512 slices of 512 x 512.
  TORCH_ARG(int64_t, max_scan_voxels) = int64_t{1} << 27;
  /// A request's deadline unless its `Request-Timeout-Ms` header asks for less (504 after).
  TORCH_ARG(std::chrono::milliseconds, request_timeout) = std::chrono::seconds(30);
  /// A request's whole head must come within this, and its body or answer within this plus
  /// its size at 1 MiB/s: slow clients are disconnected after it.
  TORCH_ARG(std::chrono::milliseconds, io_timeout) = std::chrono::seconds(10);
  /// Idle keep-alive connections close after this, and after this many requests.
  TORCH_ARG(std::chrono::milliseconds, keep_alive_timeout) = std::chrono::seconds(5);
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
  // An endpoint as the request's method and path name it.
  struct Route {
    std::string endpoint;  // for the metrics and the log: "infer", "predict", "metadata", ...
    std::string model;     // named in the path (/v2/models/NAME/...), not yet checked
  };
  struct MethodNotAllowed : std::runtime_error {
    explicit MethodNotAllowed(std::string methods) : std::runtime_error("405"), allowed(std::move(methods)) {}
    std::string allowed;
  };

  void stop_models();
  Route route_of(const http::Request& head) const;
  // On the I/O thread, from a request's head: answers the health checks; refuses (unknown
  // paths and models, a missing key, a full model, draining); takes room in the model's
  // admission limit and sets the body's limit.
  http::Admission admit(const http::Request& head);
  http::Response service_answer(const std::string& endpoint) const;
  // On a worker, with the whole request: answers it. What the endpoints throw becomes the
  // status and error body (finish).
  void handle(http::Request& http, Request& request, http::Response& response);
  // Completes an answer (with `failure`'s status and error body, if any), counts and logs it.
  void finish(Request& request, http::Response& response, std::exception_ptr failure);
  // The prediction log's line for an answered request (JSON).
  static std::string prediction_line(const Request& request, const std::string& endpoint, int status,
                                     const std::string& error, Clock::duration duration);
  ServedModel& model_named(const std::string& name) const;
  // The admission limit of the model (or the CT scan service) an inference path asks for;
  // `model` holds the name from the path and is set to the served model's. RequestError 404
  // when none is served.
  AdmissionLimit& admission_for(const std::string& path, std::string& model) const;
  ServedModel& model_of_kind(ModelKind kind, const char* endpoint) const;
  ModelResult infer(ServedModel& model, torch::Tensor input, Request& request);
  template <typename Result>
  Result await_result(const std::string& model, const std::function<std::future<Result>()>& submit,
                      const Request& request);

  void predict(const http::Request& http, http::Response& response, Request& request);
  void zebra_image(http::Request& http, http::Response& response, Request& request);
  void v2_infer(http::Request& http, http::Response& response, Request& request);
  void v2_metadata(const std::string& name, http::Response& response) const;
  void ct_nodules(http::Request& http, http::Response& response, Request& request);

  ServerOptions options_;
  std::vector<std::unique_ptr<ServedModel>> models_;
  std::unique_ptr<ScanService> scans_;
  std::shared_ptr<Metrics> metrics_;
  std::unique_ptr<PredictionLog> log_;
  std::unique_ptr<http::HttpServer> http_;
  std::unique_ptr<DecodeSlots> decode_slots_;  // pictures decoded and large JSON parsed at once: one per core
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> in_flight_{0};  // requests admitted and not yet answered
  std::atomic<uint64_t> request_counter_{0};
  std::mutex stop_mutex_;
};

}  // namespace dlwpt::serve

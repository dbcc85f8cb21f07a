#include "apps/serve/server.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <strings.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "apps/common/cpu_budget.h"
#include "apps/common/image_io.h"
#include "apps/serve/http_server.h"
#include "apps/serve/json_text.h"
#include "apps/serve/torch_threads.h"
#include "apps/zebraify/zebra.h"
#include "dlwpt/weights/errors.h"
#include "dlwpt/weights/numbers.h"

namespace dlwpt::serve {

using nlohmann::json;

namespace {

// /v2/models/NAME, with Triton's optional version (this server has version 1 only), then
// nothing (metadata), /ready or /infer.
const std::regex& model_path() {
  static const std::regex path(R"(/v2/models/([A-Za-z0-9_.-]+)(?:/versions/1)?(/ready|/infer)?)");
  return path;
}

// The models' threads come first: under overload, reading and refusing requests at the same
// priority would take the CPU the models need to answer the requests already accepted; much
// lower (19) starves the reading of the next accepted request instead. Measured with
// tools/dev.sh bench-serve: LunaModel at 256 connections 174 answers/s at nice 0, 213 at 5.
// (Linux keeps a nice value per thread; only the HTTP threads are lowered.)
constexpr int kHttpThreadNice = 5;

void yield_to_the_models() {
  const auto thread = static_cast<id_t>(syscall(SYS_gettid));
  errno = 0;
  const int current = getpriority(PRIO_PROCESS, thread);
  if (errno == 0) setpriority(PRIO_PROCESS, thread, std::max(current, kHttpThreadNice));
}

int64_t microseconds(Clock::duration duration) {
  return std::chrono::duration_cast<std::chrono::microseconds>(duration).count();
}

// A client-chosen name as error messages echo it: at most 64 characters.
std::string shown_name(const std::string& name) {
  constexpr size_t kShown = 64;
  return name.size() <= kShown ? name : name.substr(0, kShown) + "...";
}

bool is_inference_endpoint(const std::string& endpoint) {
  return endpoint == "infer" || endpoint == "predict" || endpoint == "image" || endpoint == "ct_nodules";
}

// Compares without stopping at the first difference, so that timing tells nothing of the key.
bool equal_in_constant_time(const std::string& given, const std::string& key) {
  unsigned char difference = given.size() == key.size() ? 0 : 1;
  for (size_t i = 0; i < key.size(); ++i) {
    difference |= static_cast<unsigned char>(key[i] ^ (i < given.size() ? given[i] : 0));
  }
  return difference == 0;
}

bool authorized(const http::Request& request, const std::string& key) {
  return equal_in_constant_time(request.headers.get("Authorization"), "Bearer " + key);
}

// Ids of this process's requests start with a random tag: the prediction logs of two runs of
// the server never hold the same id for different requests.
const std::string& process_tag() {
  static const std::string tag = [] {
    std::random_device random;
    std::ostringstream text;
    text << std::hex << std::setw(8) << std::setfill('0') << random();
    return text.str();
  }();
  return tag;
}

// A client's X-Request-Id when it is a short plain token, otherwise one of ours.
std::string request_id(const http::Request& http, uint64_t counter) {
  const std::string given = http.headers.get("X-Request-Id");
  const bool plain = !given.empty() && given.size() <= 64 &&
                     given.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                             "0123456789._-") == std::string::npos;
  return plain ? given : process_tag() + "-" + std::to_string(counter);
}

// Counts a request as running while it lives (drain_and_stop waits for none).
class InFlight {
 public:
  explicit InFlight(std::atomic<int64_t>& count) : count_(count) { ++count_; }
  ~InFlight() { --count_; }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  std::atomic<int64_t>& count_;
};

std::string iso_time_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

}  // namespace

// A counting semaphore (C++17 has none): at most `count` holders at once.
constexpr size_t kMaxJsonBytes = size_t{16} << 20;   // 1.5 million JSON numbers or so
constexpr size_t kSmallJsonBytes = size_t{1} << 20;  // a LunaModel chunk in JSON

class DecodeSlots {
 public:
  explicit DecodeSlots(int count) : free_(count) {}
  void acquire() {
    std::unique_lock<std::mutex> lock(mutex_);
    released_.wait(lock, [this] { return free_ > 0; });
    --free_;
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++free_;
    }
    released_.notify_one();
  }

 private:
  std::mutex mutex_;
  std::condition_variable released_;
  int free_;
};

class DecodeSlot {
 public:
  explicit DecodeSlot(DecodeSlots& slots) : slots_(slots) { slots_.acquire(); }
  ~DecodeSlot() { slots_.release(); }
  DecodeSlot(const DecodeSlot&) = delete;
  DecodeSlot& operator=(const DecodeSlot&) = delete;

 private:
  DecodeSlots& slots_;
};

// JSON lines, one per inference request, for evaluating the model later on what it saw.
class PredictionLog {
 public:
  explicit PredictionLog(const std::string& path) : path_(path), file_(path, std::ios::app) {
    if (!file_) throw FileError("cannot open the prediction log '" + path + "' for appending");
  }

  void write(const std::string& line) {
    const std::string text = line + "\n";
    std::lock_guard<std::mutex> lock(mutex_);
    file_ << text << std::flush;
    if (!file_ && !reported_) {  // a full disk costs the log, never the answers
      std::cerr << "dlwpt-serve: cannot write the prediction log '" << path_
                << "' (disk full?); answering on without it\n";
      reported_ = true;
    }
  }

 private:
  const std::string path_;
  std::ofstream file_;
  std::mutex mutex_;
  bool reported_ = false;
};

// What one request carries from its head to its answer, for the answer, the metrics and the log.
class Server::Request {
 public:
  std::string id;
  std::string endpoint;
  std::string model;
  std::shared_ptr<void> admission;  // held until answered and out of the model (AdmissionLimit)
  Clock::time_point start;
  Clock::time_point deadline;
  std::optional<ModelResult> result;  // timing of the model's run, when it ran
  Clock::duration queued{};           // from its submission to the model to its batch's start
  json summary;                       // a short result for the prediction log
  std::optional<InFlight> counted;    // from its admission until it is answered or dropped
};

namespace {

http::HttpServerOptions http_options(const ServerOptions& options) {
  return http::HttpServerOptions()
      .host(options.host())
      .port(options.port())
      .worker_threads(options.http_threads())
      .max_connections(options.http_threads() + options.max_waiting_connections())
      .io_timeout(options.io_timeout())
      .keep_alive_timeout(options.keep_alive_timeout())
      .keep_alive_requests(options.keep_alive_requests());
}

// The HTTP threads run torch (image resizing, checks) on one thread each (torch_threads.h) and
// give way to the models.
void start_http_thread() {
  set_torch_threads_of_this_thread(1);
  yield_to_the_models();
}

}  // namespace

Server::Server(ServerOptions options, std::vector<std::unique_ptr<ServedModel>> models,
               std::unique_ptr<ScanService> scans, std::shared_ptr<Metrics> metrics)
    : options_(std::move(options)),
      models_(std::move(models)),
      scans_(std::move(scans)),
      metrics_(std::move(metrics)),
      decode_slots_(std::make_unique<DecodeSlots>(dlwpt::apps::available_cores())) {
  if (!options_.prediction_log().empty()) log_ = std::make_unique<PredictionLog>(options_.prediction_log());
  http_ = std::make_unique<http::HttpServer>(
      http_options(options_), [this](const http::Request& head) { return admit(head); },
      [this](http::Request& request, const std::shared_ptr<void>& context, http::Response& response) {
        handle(request, *std::static_pointer_cast<Request>(context), response);
      },
      [](int, const std::string& reason) { return std::make_pair(error_json(reason), std::string("application/json")); },
      start_http_thread);
}

Server::~Server() {
  if (http_) http_->stop();
  stop_models();
  http_.reset();  // its workers finish (the models answer them ShuttingDown) before the rest goes
}

void Server::stop_models() {
  for (auto& model : models_) model->stop();
  if (scans_) scans_->stop();
}

int Server::bind() {
  try {
    return http_->bind();
  } catch (const std::exception& failure) {
    throw UsageError(std::string(failure.what()) + " (address in use, or not an address of this machine?)");
  }
}

void Server::serve() { http_->serve(); }

bool Server::drain_and_stop() {
  std::lock_guard<std::mutex> lock(stop_mutex_);
  draining_ = true;
  // Requests being received count too: a client that sent its request before the signal gets
  // its answer (200, or 503 once draining). Idle keep-alive connections are not waited for.
  const auto give_up = Clock::now() + options_.drain_timeout();
  while ((in_flight_ > 0 || http_->busy_connections() > 0) && Clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const bool drained = in_flight_ == 0;
  http_->stop();
  stop_models();
  return drained;
}

ServedModel& Server::model_named(const std::string& name) const {
  for (const auto& model : models_) {
    if (model->name() == name) return *model;
  }
  throw RequestError(404, "no model named \"" + shown_name(name) + "\" is served here");
}

ServedModel& Server::model_of_kind(ModelKind kind, const char* endpoint) const {
  for (const auto& model : models_) {
    if (model->kind() == kind) return *model;
  }
  throw RequestError(404, std::string(endpoint) + " needs a " + kind_name(kind) +
                              ", and this server serves none (see --model)");
}

Server::Route Server::route_of(const http::Request& head) const {
  const bool get = head.method == "GET" || head.method == "HEAD";
  const auto only = [&](bool allowed, const char* methods, Route route) {
    if (!allowed) throw MethodNotAllowed(methods);
    return route;
  };
  const std::string& path = head.path;
  if (path == "/v2/health/live") return only(get, "GET, HEAD", {"live", ""});
  if (path == "/v2/health/ready") return only(get, "GET, HEAD", {"ready", ""});
  if (path == "/v2") return only(get, "GET, HEAD", {"server_metadata", ""});
  if (path == "/metrics") return only(get, "GET, HEAD", {"metrics", ""});
  if (path == "/predict") return only(head.method == "POST", "POST", {"predict", ""});
  if (path == "/image") return only(head.method == "PUT", "PUT", {"image", ""});
  if (path == "/v1/ct/nodules") return only(head.method == "POST", "POST", {"ct_nodules", ""});
  std::smatch match;
  if (std::regex_match(path, match, model_path())) {
    const std::string model = match[1].str();
    if (match[2] == "/infer") return only(head.method == "POST", "POST", {"infer", model});
    return only(get, "GET, HEAD", {match[2] == "/ready" ? "model_ready" : "metadata", model});
  }
  throw RequestError(404, "no such path (see README: /predict, /image, /v2/..., /metrics)");
}

http::Admission Server::admit(const http::Request& head) {
  auto request = std::make_shared<Request>();
  request->start = Clock::now();
  request->id = request_id(head, ++request_counter_);
  auto timeout = options_.request_timeout();
  if (const auto asked = parse_integer(head.headers.get("Request-Timeout-Ms")); asked && *asked > 0) {
    timeout = std::min(timeout, std::chrono::milliseconds(*asked));
  }
  request->deadline = request->start + timeout;
  http::Admission admission;
  try {
    const Route route = route_of(head);
    request->endpoint = route.endpoint;
    if (route.endpoint == "live" || route.endpoint == "ready" || route.endpoint == "server_metadata") {
      admission.answer = service_answer(route.endpoint);  // at once, however busy the workers
      return admission;
    }
    const std::string& key = options_.api_key();
    if (!key.empty() && !authorized(head, key)) {
      throw RequestError(401, "missing or wrong API key (Authorization: Bearer ...)");
    }
    // Metrics carry a model label only for models that exist: client-chosen names would let
    // anyone grow the metrics without bound.
    if (is_inference_endpoint(route.endpoint)) {
      // Refusals come before the body is read: under overload, turning requests away must
      // cost far less than serving them.
      if (draining_) throw RequestError(503, "the server is shutting down");
      std::string model = route.model;
      AdmissionLimit& limit = admission_for(head.path, model);
      request->model = model;
      if (!(request->admission = limit.try_admit())) {
        throw RequestError(503, request->model + " is overloaded: its queue and runners are full");
      }
      admission.body_limit = route.endpoint == "ct_nodules" ? options_.max_scan_bytes() : options_.max_body_bytes();
    } else if (!route.model.empty()) {
      request->model = model_named(route.model).name();
    }
    request->counted.emplace(in_flight_);
    admission.context = request;
  } catch (const std::exception&) {
    http::Response refused;
    finish(*request, refused, std::current_exception());
    admission.answer = std::move(refused);
  }
  return admission;
}

http::Response Server::service_answer(const std::string& endpoint) const {
  http::Response response;
  if (endpoint == "ready") response.status = ready() ? 200 : 503;
  if (endpoint == "server_metadata") {
    const json metadata = {{"name", "dlwpt-serve"}, {"version", "1"}, {"extensions", {"binary_tensor_data"}}};
    response.set_content(json_text(metadata), "application/json");
  }
  response.close = draining_;  // clients go elsewhere
  return response;
}

void Server::handle(http::Request& http, Request& request, http::Response& response) {
  try {
    if (request.endpoint == "metrics") {
      for (const auto& model : models_) metrics_->set_queue_size(model->name(), model->queue_size());
      if (scans_) metrics_->set_queue_size("ct_nodules", scans_->queue_size());
      response.set_content(metrics_->scrape(), "text/plain; version=0.0.4");
      response.close = draining_;
      return;
    }
    if (request.endpoint == "metadata") {
      v2_metadata(request.model, response);
    } else if (request.endpoint == "model_ready") {
      response.status = ready() ? 200 : 503;
    } else if (request.endpoint == "infer") {
      v2_infer(http, response, request);
    } else if (request.endpoint == "predict") {
      predict(http, response, request);
    } else if (request.endpoint == "image") {
      zebra_image(http, response, request);
    } else if (request.endpoint == "ct_nodules") {
      ct_nodules(http, response, request);
    }
    finish(request, response, nullptr);
  } catch (const std::exception&) {
    finish(request, response, std::current_exception());
  }
}

void Server::finish(Request& request, http::Response& response, std::exception_ptr failure) {
  std::string error;
  try {
    if (failure) std::rethrow_exception(failure);
  } catch (const MethodNotAllowed& refused) {
    response.status = 405;
    response.headers.set("Allow", refused.allowed);
    error = "method not allowed on this path (" + refused.allowed + ")";
  } catch (const RequestError& refused) {
    response.status = refused.status();
    error = refused.what();
  } catch (const LimitError& too_large) {
    response.status = 413;
    error = too_large.what();
  } catch (const dlwpt::Error& bad_input) {  // unreadable images and the like
    response.status = 400;
    error = bad_input.what();
  } catch (const std::exception& unexpected) {
    response.status = 500;
    error = std::string("internal error: ") + unexpected.what();
  }
  if (!error.empty()) response.set_content(error_json(error), "application/json");
  if (response.status == 503) response.headers.set("Retry-After", "1");
  if (response.status == 401) response.headers.set("WWW-Authenticate", "Bearer");
  response.headers.set("X-Request-Id", request.id);
  response.close = response.close || draining_;
  request.admission.reset();  // the model's room is free once its answer is made
  const auto duration = Clock::now() - request.start;
  const std::string& endpoint = request.endpoint.empty() ? std::string("unknown") : request.endpoint;
  metrics_->count_request(request.model, endpoint, response.status, duration);
  if (log_ && is_inference_endpoint(endpoint)) {
    log_->write(prediction_line(request, endpoint, response.status, error, duration));
  }
}

std::string Server::prediction_line(const Request& request, const std::string& endpoint, int status,
                                    const std::string& error, Clock::duration duration) {
  json line = {{"time", iso_time_now()}, {"id", request.id}, {"endpoint", endpoint},
               {"model", request.model}, {"status", status}, {"total_us", microseconds(duration)}};
  if (request.result) {
    // The rest of total_us is the request's own: reading and decoding it, encoding the answer.
    line["compute_us"] = microseconds(request.result->compute);
    line["queue_us"] = microseconds(request.queued);
    line["batch_size"] = request.result->batch_size;
  }
  if (!error.empty()) line["error"] = error;
  if (!request.summary.is_null()) line["result"] = request.summary;
  return json_text(line);
}

template <typename Result>
Result Server::await_result(const std::string& model, const std::function<std::future<Result>()>& submit,
                            const Request& request) {
  std::future<Result> future;
  try {
    future = submit();
  } catch (const QueueFull& full) {
    throw RequestError(503, model + " is overloaded: " + full.what());
  } catch (const ShuttingDown& stopping) {
    throw RequestError(503, stopping.what());
  }
  if (future.wait_until(request.deadline) == std::future_status::timeout) {
    throw RequestError(504, model + " did not answer within the request's deadline");
  }
  try {
    return future.get();
  } catch (const DeadlineExceeded& expired) {
    throw RequestError(504, expired.what());
  } catch (const RequestError&) {
    throw;
  } catch (const std::exception& failure) {
    throw RequestError(500, model + " failed: " + failure.what());
  }
}

ModelResult Server::infer(ServedModel& model, torch::Tensor input, Request& request) {
  const auto submitted = Clock::now();
  request.result = await_result<ModelResult>(
      model.name(), [&] { return model.submit(std::move(input), request.deadline, request.admission); },
      request);
  request.queued = std::max(Clock::duration::zero(), Clock::now() - submitted - request.result->compute);
  for (const auto& [name, output] : request.result->outputs) {
    if (!all_finite(output)) {
      throw RequestError(400, "the model's output \"" + name + "\" holds NaN or infinite values: the input's "
                              "values are beyond what the model computes in float32");
    }
  }
  return *request.result;
}

void Server::ct_nodules(http::Request& http, http::Response& response, Request& request) {
  auto volume = std::make_shared<const ct::CtVolume>(ScanService::read_body(http.body, options_.max_scan_voxels()));
  std::string().swap(http.body);
  const std::string candidates = await_result<std::string>(
      request.model, [&] { return scans_->submit(volume, request.deadline, request.admission); }, request);
  request.summary = {{"bytes", candidates.size()}};
  response.set_content(candidates, "application/json");
}

void Server::predict(const http::Request& http, http::Response& response, Request& request) {
  ServedModel& model = model_named(request.model);
  const std::string content_type = http.headers.get("Content-Type");
  const auto book_form = [] {
    return RequestError(400, "/predict takes multipart/form-data with the fields \"meta\" (JSON with "
                             "the chunk's \"shape\") and \"blob\" (its float32 values), as the "
                             "book's client sends them");
  };
  if (strncasecmp(content_type.c_str(), "multipart/form-data", 19) != 0) throw book_form();
  const auto parts = parse_multipart_form_data(content_type, http.body);
  if (!parts.count("meta") || !parts.count("blob")) throw book_form();
  const torch::Tensor chunk = parse_book_chunk(parts.at("meta"), parts.at("blob"), model.inputs().front());
  model.check_input(chunk);
  const ModelResult result = infer(model, chunk, request);
  const torch::Tensor probabilities = result.outputs.at("probabilities").to(torch::kFloat64);
  const double malignant = probabilities[0][1].item<double>();
  const json body = {{"prob_malignant", malignant},
                     {"probabilities", {probabilities[0][0].item<double>(), malignant}}};
  request.summary = {{"prob_malignant", malignant}};
  response.set_content(json_text(body), "application/json");
}

void Server::zebra_image(http::Request& http, http::Response& response, Request& request) {
  ServedModel& model = model_named(request.model);
  apps::ImageReadOptions limits;
  limits.max_pixels = options_.max_image_pixels();
  const zebraify::PreparedImage prepared = [&] {
    // A picture of the maximum size takes about 400 MB while it is decoded and scaled down
    // (8-bit, then float, then resized): a few at a time, whatever the admitted count.
    const DecodeSlot slot(*decode_slots_);
    const apps::RgbImage image = apps::decode_image(http.body.data(), http.body.size(), "the request body", limits);
    return zebraify::prepare_image(image, options_.image_max_side());
  }();
  std::string().swap(http.body);
  const ModelResult result = infer(model, prepared.padded, request);
  const apps::RgbImage zebra = zebraify::finish_image(result.outputs.at("output"), prepared);
  request.summary = {{"width", zebra.width}, {"height", zebra.height}};
  // JPEG as the book's server answers, PNG (lossless) for clients that ask for it.
  if (http.headers.get("Accept").find("image/png") != std::string::npos) {
    response.set_content(apps::encode_png(zebra), "image/png");
  } else {
    response.set_content(apps::encode_jpeg(zebra, options_.jpeg_quality()), "image/jpeg");
  }
}

void Server::v2_infer(http::Request& http, http::Response& response, Request& request) {
  ServedModel& model = model_named(request.model);
  std::optional<size_t> header_length;
  if (http.headers.has("Inference-Header-Content-Length")) {
    const auto length = parse_unsigned(http.headers.get("Inference-Header-Content-Length"));
    if (!length) throw RequestError(400, "Inference-Header-Content-Length is not a byte count");
    header_length = static_cast<size_t>(*length);
  }
  // JSON numbers take some 25 times their text in memory while parsed (nlohmann's values):
  // their size is bounded, and large ones are parsed as many at once as there are cores.
  const size_t json_bytes = std::min(header_length.value_or(http.body.size()), http.body.size());
  if (json_bytes > kMaxJsonBytes) {
    throw LimitError("the request's JSON is " + std::to_string(json_bytes) + " bytes, more than " +
                     std::to_string(kMaxJsonBytes) + ": send large tensors with the binary-data extension");
  }
  std::optional<DecodeSlot> slot;
  if (json_bytes > kSmallJsonBytes) slot.emplace(*decode_slots_);
  const InferRequest parsed = parse_infer_request(http.body, header_length, model.inputs(), model.outputs());
  slot.reset();
  std::string().swap(http.body);  // the tensor holds the values now; a U-Net slice is 7 MiB
  const torch::Tensor& input = parsed.inputs.at(model.inputs().front().name);
  model.check_input(input);
  const ModelResult result = infer(model, input, request);
  const EncodedResponse encoded = encode_infer_response(model.name(), parsed, result.outputs, model.outputs());
  if (encoded.header_length) {
    response.headers.set("Inference-Header-Content-Length", std::to_string(*encoded.header_length));
  }
  request.summary = {{"batch", input.size(0)}};
  response.set_content(encoded.body, encoded.content_type);
}

void Server::v2_metadata(const std::string& name, http::Response& response) const {
  const ServedModel& model = model_named(name);
  const auto specs = [](const std::vector<TensorSpec>& tensors) {
    json list = json::array();
    for (const auto& spec : tensors) {
      list.push_back({{"name", spec.name}, {"datatype", spec.datatype}, {"shape", spec.shape}});
    }
    return list;
  };
  const json metadata = {{"name", model.name()},
                         {"versions", {"1"}},
                         {"platform", "dlwpt_native"},
                         {"dlwpt_model", kind_name(model.kind())},
                         {"trained", model.trained()},
                         {"inputs", specs(model.inputs())},
                         {"outputs", specs(model.outputs())}};
  response.set_content(json_text(metadata), "application/json");
}

AdmissionLimit& Server::admission_for(const std::string& path, std::string& model) const {
  if (path == "/v1/ct/nodules") {
    if (!scans_) throw RequestError(404, "/v1/ct/nodules needs a segmentation and a nodule model (see --model)");
    model = "ct_nodules";
    return scans_->admission();
  }
  ServedModel& served = path == "/predict" ? model_of_kind(ModelKind::nodule, "/predict")
                        : path == "/image" ? model_of_kind(ModelKind::zebra, "/image")
                                           : model_named(model);
  model = served.name();
  return served.admission();
}

}  // namespace dlwpt::serve

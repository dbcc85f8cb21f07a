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

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "apps/common/cpu_budget.h"
#include "apps/common/image_io.h"
#include "apps/serve/json_text.h"
#include "apps/serve/torch_threads.h"
#include "apps/zebraify/zebra.h"
#include "dlwpt/weights/errors.h"
#include "dlwpt/weights/numbers.h"

namespace dlwpt::serve {

using nlohmann::json;

namespace {

// Set on the thread that answers connections beyond the waiting limit: each request it reads
// is answered 503 at once.
thread_local bool refusing_connections = false;

// /v2/models/NAME, with Triton's optional version (this server has version 1 only).
const std::string kModelPath = R"(/v2/models/([A-Za-z0-9_.-]+)(?:/versions/1)?)";

// The models' threads come first: under overload, reading and refusing requests at the same
// priority would take the CPU the models need to answer the requests already accepted; much
// lower (19) starves the reading of the next accepted request instead. Measured with
// tools/dev.sh bench-serve: LunaModel at 256 connections 174 answers/s at nice 0, 213 at 5.
// (Linux keeps a nice value per thread; only this thread is lowered.)
constexpr int kHttpThreadNice = 5;

void yield_to_the_models() {
  const auto thread = static_cast<id_t>(syscall(SYS_gettid));
  errno = 0;
  const int current = getpriority(PRIO_PROCESS, thread);
  if (errno == 0) setpriority(PRIO_PROCESS, thread, std::max(current, kHttpThreadNice));
}

// cpp-httplib's task queue: a fixed pool of threads, a bounded wait for one, and a thread
// that refuses what does not fit (the library's own pool queues without limit).
// `busy` counts the connections being served, so that a drain can wait for requests still
// being received as well as those running.
class HttpWorkers final : public httplib::TaskQueue {
 public:
  HttpWorkers(int threads, int max_waiting, std::shared_ptr<std::atomic<int64_t>> busy)
      : max_waiting_(static_cast<size_t>(max_waiting)), busy_(std::move(busy)) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { work(waiting_, has_waiting_); });
    threads_.emplace_back([this] {
      refusing_connections = true;
      work(refused_, has_refused_);
    });
  }

  ~HttpWorkers() override { shutdown(); }

  void enqueue(std::function<void()> connection) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (waiting_.size() < max_waiting_) {
        waiting_.push_back(std::move(connection));
        has_waiting_.notify_one();
        return;
      }
      refused_.push_back(std::move(connection));
    }
    has_refused_.notify_one();
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
    }
    has_waiting_.notify_all();
    has_refused_.notify_all();
    for (auto& thread : threads_) thread.join();
  }

 private:
  void work(std::deque<std::function<void()>>& queue, std::condition_variable& has_work) {
    set_torch_threads_of_this_thread(1);  // image resizing, checks: see torch_threads.h
    yield_to_the_models();
    for (;;) {
      std::function<void()> connection;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        has_work.wait(lock, [&] { return stopping_ || !queue.empty(); });
        if (queue.empty()) return;  // stopping, and every connection served
        connection = std::move(queue.front());
        queue.pop_front();
      }
      ++*busy_;
      connection();
      --*busy_;
    }
  }

  const size_t max_waiting_;
  const std::shared_ptr<std::atomic<int64_t>> busy_;
  std::mutex mutex_;
  std::condition_variable has_waiting_;
  std::condition_variable has_refused_;
  std::deque<std::function<void()>> waiting_;
  std::deque<std::function<void()>> refused_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

int64_t microseconds(Clock::duration duration) {
  return std::chrono::duration_cast<std::chrono::microseconds>(duration).count();
}

// Why cpp-httplib refused a request itself (it sets the status, not a reason).
std::string status_reason(int status) {
  switch (status) {
    case 400:
      return "malformed HTTP request";
    case 404:
      return "no such path (see README: /predict, /image, /v2/..., /metrics)";
    case 405:
      return "method not allowed on this path";
    case 413:
      return "request body larger than the server's limit";
    case 414:
      return "request line too long";
    default:
      return "HTTP status " + std::to_string(status);
  }
}

bool is_inference_endpoint(const std::string& endpoint) {
  return endpoint == "infer" || endpoint == "predict" || endpoint == "image" || endpoint == "ct_nodules";
}

bool is_health_check(const std::string& path) { return path.rfind("/v2/health/", 0) == 0; }

// Compares without stopping at the first difference, so that timing tells nothing of the key.
bool equal_in_constant_time(const std::string& given, const std::string& key) {
  unsigned char difference = given.size() == key.size() ? 0 : 1;
  for (size_t i = 0; i < key.size(); ++i) {
    difference |= static_cast<unsigned char>(key[i] ^ (i < given.size() ? given[i] : 0));
  }
  return difference == 0;
}

// cpp-httplib 0.11 closes a connection after an answer only when the request asked for it or
// the answer could not be written, whatever "Connection: close" the answer says: an answer
// whose body comes from a provider that writes it whole and then reports failure is how a
// server built on it closes the connection, after the client has the whole answer.
void close_after(httplib::Response& response) {
  auto body = std::make_shared<std::string>(std::move(response.body));
  response.body.clear();
  const std::string type = response.get_header_value("Content-Type");
  response.headers.erase("Content-Type");
  response.set_content_provider(body->size(), type.empty() ? "application/json" : type,
                                [body](size_t offset, size_t length, httplib::DataSink& sink) {
                                  sink.write(body->data() + offset, length);
                                  return false;
                                });
}

// An answer given before the body is read: the connection closes after it (close_after), or
// the body would be read as the client's next request.
void refuse_before_the_body(httplib::Response& response, int status, const std::string& message) {
  response.status = status;
  response.set_header("Connection", "close");
  if (status == 503) response.set_header("Retry-After", "1");
  if (status == 401) response.set_header("WWW-Authenticate", "Bearer");
  response.set_content(error_json(message), "application/json");
}

bool authorized(const httplib::Request& request, const std::string& key) {
  return equal_in_constant_time(request.get_header_value("Authorization"), "Bearer " + key);
}

// What makes a request's framing ambiguous, as the status and reason to refuse it with: a proxy
// in front and this server could disagree on where its body ends (request smuggling), or a
// body nobody reads would be taken for the client's next request.
std::optional<std::pair<int, std::string>> framing_problem(const httplib::Request& request) {
  const size_t lengths = request.get_header_value_count("Content-Length");
  const auto length = parse_unsigned(request.get_header_value("Content-Length"));
  const bool encoded = request.has_header("Transfer-Encoding");
  if (lengths > 1) return {{400, "more than one Content-Length header"}};
  if (lengths == 1 && !length) return {{400, "Content-Length is not a byte count"}};
  if (encoded && lengths == 1) return {{400, "both Content-Length and Transfer-Encoding are given"}};
  if (encoded && (request.get_header_value_count("Transfer-Encoding") > 1 ||
                  strcasecmp(request.get_header_value("Transfer-Encoding").c_str(), "chunked") != 0)) {
    return {{501, "the only Transfer-Encoding taken is chunked"}};
  }
  const bool has_body = encoded || (length && *length > 0);
  if (has_body && request.method != "POST" && request.method != "PUT") {
    return {{400, request.method + " requests carry no body here"}};
  }
  return std::nullopt;
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
std::string request_id(const httplib::Request& http, uint64_t counter) {
  const std::string given = http.get_header_value("X-Request-Id");
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

// What one request carries through its handler, for the answer, the metrics and the log.
class Server::Request {
 public:
  std::string id;
  std::string model;
  std::shared_ptr<void> admission;           // held until answered and out of the model (AdmissionLimit)
  std::string body;                          // when not multipart
  std::map<std::string, std::string> parts;  // multipart/form-data fields by name
  bool body_left_unread = false;             // the connection must close after the answer
  Clock::time_point deadline;
  std::optional<ModelResult> result;  // timing of the model's run, when it ran
  Clock::duration queued{};           // from its submission to the model to its batch's start
  json summary;                       // a short result for the prediction log
};

Server::Server(ServerOptions options, std::vector<std::unique_ptr<ServedModel>> models,
               std::unique_ptr<ScanService> scans, std::shared_ptr<Metrics> metrics)
    : options_(std::move(options)),
      models_(std::move(models)),
      scans_(std::move(scans)),
      metrics_(std::move(metrics)),
      http_(std::make_unique<httplib::Server>()),
      decode_slots_(std::make_unique<DecodeSlots>(dlwpt::apps::available_cores())) {
  if (!options_.prediction_log().empty()) log_ = std::make_unique<PredictionLog>(options_.prediction_log());
  const int threads = options_.http_threads();
  const int waiting = options_.max_waiting_connections();
  http_->new_task_queue = [threads, waiting, busy = busy_connections_] {
    return new HttpWorkers(threads, waiting, busy);
  };
  // The library's limit is the larger one; answer() holds other endpoints to max_body_bytes.
  http_->set_payload_max_length(scans_ ? std::max(options_.max_body_bytes(), options_.max_scan_bytes())
                                       : options_.max_body_bytes());
  http_->set_read_timeout(options_.io_timeout());
  http_->set_write_timeout(options_.io_timeout());
  http_->set_keep_alive_timeout(options_.keep_alive_timeout().count());
  http_->set_keep_alive_max_count(static_cast<size_t>(options_.keep_alive_requests()));
  http_->set_tcp_nodelay(true);
  http_->set_socket_options([this](int socket) {
    httplib::default_socket_options(socket);
    listening_socket_ = socket;  // only the listening socket is made through this
  });
  add_routes();
}

Server::~Server() {
  if (http_) http_->stop();
  stop_models();
}

void Server::stop_models() {
  for (auto& model : models_) model->stop();
  if (scans_) scans_->stop();
}

int Server::bind() {
  int port = 0;
  if (options_.port() == 0) {
    port = http_->bind_to_any_port(options_.host());
  } else if (http_->bind_to_port(options_.host(), options_.port())) {
    port = options_.port();
  }
  if (port > 0) {
    // cpp-httplib listens with a backlog of 5, compiled in: a burst of new connections then
    // overflows the kernel's accept queue and clients see resets. listen() again raises it.
    ::listen(listening_socket_, SOMAXCONN);
    return port;
  }
  throw UsageError("cannot listen on " + options_.host() + ":" + std::to_string(options_.port()) +
                   " (address in use, or not an address of this machine?)");
}

void Server::serve() { http_->listen_after_bind(); }

bool Server::drain_and_stop() {
  std::lock_guard<std::mutex> lock(stop_mutex_);
  draining_ = true;
  // Requests being received count too: a client that sent its request before the signal gets
  // its answer (200, or 503 once draining). Idle keep-alive connections end by their timeout.
  const auto give_up = Clock::now() + options_.drain_timeout();
  while ((in_flight_ > 0 || *busy_connections_ > 0) && Clock::now() < give_up) {
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
  throw RequestError(404, "no model named \"" + name + "\" is served here");
}

ServedModel& Server::model_of_kind(ModelKind kind, const char* endpoint) const {
  for (const auto& model : models_) {
    if (model->kind() == kind) return *model;
  }
  throw RequestError(404, std::string(endpoint) + " needs a " + kind_name(kind) +
                              ", and this server serves none (see --model)");
}

namespace {

// Reads the body through cpp-httplib's content reader, at most `limit` bytes; multipart
// fields go to `parts`. LimitError beyond the limit (413), once the rest is read and dropped:
// the connection's next request starts after it (the library's own limit is larger). A
// compressed body (Content-Encoding) is given inflated, and a megabyte of it may inflate to
// gigabytes: its reading stops at the limit, `stopped_early` is set and the connection must
// close.
void read_body(const httplib::Request& http, const httplib::ContentReader& reader, size_t limit,
               const httplib::Response& response, std::string& body,
               std::map<std::string, std::string>& parts, bool& stopped_early) {
  const std::string encoding = http.get_header_value("Content-Encoding");
  const bool inflated = !encoding.empty() && strcasecmp(encoding.c_str(), "identity") != 0;
  size_t total = 0;
  const auto keep = [&](std::string& into, const char* data, size_t length) {
    total += length;
    if (total <= limit) into.append(data, length);
    stopped_early = inflated && total > limit;
    return !stopped_early;
  };
  bool ok = true;
  if (http.is_multipart_form_data()) {
    std::string* field = nullptr;
    ok = reader(
        [&](const httplib::MultipartFormData& header) {
          field = &parts[header.name];
          field->clear();
          return true;
        },
        [&](const char* data, size_t length) { return keep(*field, data, length); });
  } else {
    const auto declared = parse_unsigned(http.get_header_value("Content-Length"));
    if (declared && *declared <= limit) body.reserve(static_cast<size_t>(*declared));
    ok = reader([&](const char* data, size_t length) { return keep(body, data, length); });
  }
  if ((ok || stopped_early) && total > limit) {
    throw LimitError("the body is larger than this endpoint's limit of " + std::to_string(limit) + " bytes");
  }
  if (ok) return;
  // cpp-httplib refuses a Content-Length beyond its payload limit itself, with this status.
  if (response.status == 413) throw LimitError("the body is larger than the server's limit");
  throw RequestError(400, "the body could not be read (truncated, or malformed multipart data)");
}

// Reads and drops what is left of a refused request's body, so that the connection's next
// request starts where it should; nothing is stored or parsed.
void discard_body(const httplib::Request& http, const httplib::ContentReader& reader) {
  const auto drop = [](const char*, size_t) { return true; };
  if (http.is_multipart_form_data()) {  // the plain reader has no parser for it
    reader([](const httplib::MultipartFormData&) { return true; }, drop);
  } else {
    reader(drop);
  }
}

}  // namespace

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

void Server::answer(const httplib::Request& http, httplib::Response& response,
                    const std::string& endpoint, const httplib::ContentReader* reader, bool admit,
                    const std::function<void(Request&, httplib::Response&)>& handle) {
  const auto start = Clock::now();
  const InFlight counted(in_flight_);
  Request request;
  request.id = request_id(http, ++request_counter_);
  auto timeout = options_.request_timeout();
  if (const auto asked = parse_integer(http.get_header_value("Request-Timeout-Ms")); asked && *asked > 0) {
    timeout = std::min(timeout, std::chrono::milliseconds(*asked));
  }
  request.deadline = start + timeout;
  std::string error;
  bool body_read = reader == nullptr;
  try {
    // Refusals come before the body is read into memory or parsed: under overload, turning
    // requests away must cost far less than serving them.
    if (draining_) throw RequestError(503, "the server is shutting down");
    if (admit && !(request.admission = admission_for(http.path, request.model).try_admit())) {
      throw RequestError(503, request.model + " is overloaded: its queue and runners are full");
    }
    if (reader) {
      body_read = true;  // read_body consumes the body even when it throws
      read_body(http, *reader,
                endpoint == "ct_nodules" ? options_.max_scan_bytes() : options_.max_body_bytes(),
                response, request.body, request.parts, request.body_left_unread);
    }
    handle(request, response);
  } catch (const RequestError& refused) {
    response.status = refused.status();
    error = refused.what();
  } catch (const LimitError& too_large) {
    response.status = 413;
    error = too_large.what();
  } catch (const dlwpt::Error& bad_input) {  // unreadable images and the like
    response.status = 400;
    error = bad_input.what();
  } catch (const std::exception& failure) {
    response.status = 500;
    error = std::string("internal error: ") + failure.what();
  }
  if (!body_read) discard_body(http, *reader);
  if (!error.empty()) response.set_content(error_json(error), "application/json");
  if (response.status == 503) response.set_header("Retry-After", "1");
  if (response.status == -1) response.status = 200;
  if (request.body_left_unread) response.set_header("Connection", "close");
  response.set_header("X-Request-Id", request.id);
  const auto duration = Clock::now() - start;
  metrics_->count_request(request.model, endpoint, response.status, duration);
  if (log_ && is_inference_endpoint(endpoint)) log_->write(prediction_line(request, endpoint, response.status, error, duration));
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

void Server::ct_nodules(httplib::Response& response, Request& request) {
  auto volume = std::make_shared<const ct::CtVolume>(
      ScanService::read_body(request.body, options_.max_scan_voxels()));
  const std::string candidates = await_result<std::string>(
      request.model, [&] { return scans_->submit(volume, request.deadline, request.admission); }, request);
  request.summary = {{"bytes", candidates.size()}};
  response.set_content(candidates, "application/json");
}

void Server::predict(const httplib::Request& http, httplib::Response& response, Request& request) {
  ServedModel& model = model_named(request.model);
  if (!http.is_multipart_form_data() || !request.parts.count("meta") || !request.parts.count("blob")) {
    throw RequestError(400, "/predict takes multipart/form-data with the fields \"meta\" (JSON with "
                            "the chunk's \"shape\") and \"blob\" (its float32 values), as the "
                            "book's client sends them");
  }
  const torch::Tensor chunk = parse_book_chunk(request.parts["meta"], request.parts["blob"],
                                               model.inputs().front());
  model.check_input(chunk);
  const ModelResult result = infer(model, chunk, request);
  const torch::Tensor probabilities = result.outputs.at("probabilities").to(torch::kFloat64);
  const double malignant = probabilities[0][1].item<double>();
  const json body = {{"prob_malignant", malignant},
                     {"probabilities", {probabilities[0][0].item<double>(), malignant}}};
  request.summary = {{"prob_malignant", malignant}};
  response.set_content(json_text(body), "application/json");
}

void Server::zebra_image(const httplib::Request& http, httplib::Response& response, Request& request) {
  ServedModel& model = model_named(request.model);
  apps::ImageReadOptions limits;
  limits.max_pixels = options_.max_image_pixels();
  const zebraify::PreparedImage prepared = [&] {
    // A picture of the maximum size takes about 400 MB while it is decoded and scaled down
    // (8-bit, then float, then resized): a few at a time, whatever the admitted count.
    const DecodeSlot slot(*decode_slots_);
    const apps::RgbImage image =
        apps::decode_image(request.body.data(), request.body.size(), "the request body", limits);
    return zebraify::prepare_image(image, options_.image_max_side());
  }();
  std::string().swap(request.body);
  const ModelResult result = infer(model, prepared.padded, request);
  const apps::RgbImage zebra = zebraify::finish_image(result.outputs.at("output"), prepared);
  request.summary = {{"width", zebra.width}, {"height", zebra.height}};
  // JPEG as the book's server answers, PNG (lossless) for clients that ask for it.
  if (http.get_header_value("Accept").find("image/png") != std::string::npos) {
    response.set_content(apps::encode_png(zebra), "image/png");
  } else {
    response.set_content(apps::encode_jpeg(zebra, options_.jpeg_quality()), "image/jpeg");
  }
}

void Server::v2_infer(const httplib::Request& http, httplib::Response& response, Request& request) {
  ServedModel& model = model_named(request.model);
  std::optional<size_t> header_length;
  if (http.has_header("Inference-Header-Content-Length")) {
    const auto length = parse_unsigned(http.get_header_value("Inference-Header-Content-Length"));
    if (!length) throw RequestError(400, "Inference-Header-Content-Length is not a byte count");
    header_length = static_cast<size_t>(*length);
  }
  // JSON numbers take some 25 times their text in memory while parsed (nlohmann's values):
  // their size is bounded, and large ones are parsed as many at once as there are cores.
  const size_t json_bytes = std::min(header_length.value_or(request.body.size()), request.body.size());
  if (json_bytes > kMaxJsonBytes) {
    throw LimitError("the request's JSON is " + std::to_string(json_bytes) + " bytes, more than " +
                     std::to_string(kMaxJsonBytes) + ": send large tensors with the binary-data extension");
  }
  std::optional<DecodeSlot> slot;
  if (json_bytes > kSmallJsonBytes) slot.emplace(*decode_slots_);
  const InferRequest parsed = parse_infer_request(request.body, header_length, model.inputs(), model.outputs());
  slot.reset();
  std::string().swap(request.body);  // the tensor holds the values now; a U-Net slice is 7 MiB
  const torch::Tensor& input = parsed.inputs.at(model.inputs().front().name);
  model.check_input(input);
  const ModelResult result = infer(model, input, request);
  const EncodedResponse encoded = encode_infer_response(model.name(), parsed, result.outputs, model.outputs());
  if (encoded.header_length) {
    response.set_header("Inference-Header-Content-Length", std::to_string(*encoded.header_length));
  }
  request.summary = {{"batch", input.size(0)}};
  response.set_content(encoded.body, encoded.content_type);
}

void Server::v2_metadata(const std::string& name, httplib::Response& response) const {
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
  static const std::regex infer_path(kModelPath + "/infer");
  std::smatch match;
  if (path == "/v1/ct/nodules") {
    if (!scans_) throw RequestError(404, "/v1/ct/nodules needs a segmentation and a nodule model (see --model)");
    model = "ct_nodules";
    return scans_->admission();
  }
  ServedModel& served = path == "/predict" ? model_of_kind(ModelKind::nodule, "/predict")
                        : path == "/image" ? model_of_kind(ModelKind::zebra, "/image")
                        : std::regex_match(path, match, infer_path)
                            ? model_named(match[1].str())
                            : throw RequestError(404, "no model answers " + path);
  model = served.name();
  return served.admission();
}

void Server::add_inference_route(
    const std::string& method, const std::string& pattern, const std::string& endpoint,
    const std::function<void(const httplib::Request&, Request&, httplib::Response&)>& handle) {
  const auto route = [this, endpoint, handle](const httplib::Request& http, httplib::Response& response,
                                              const httplib::ContentReader* reader) {
    answer(http, response, endpoint, reader, /*admit=*/true,
           [&](Request& context, httplib::Response& out) { handle(http, context, out); });
  };
  const httplib::Server::Handler without_body = [route](const httplib::Request& http, httplib::Response& response) {
    route(http, response, nullptr);
  };
  const httplib::Server::HandlerWithContentReader with_body =
      [route](const httplib::Request& http, httplib::Response& response, const httplib::ContentReader& reader) {
        route(http, response, &reader);
      };
  if (method == "POST") {
    http_->Post(pattern, without_body);
    http_->Post(pattern, with_body);
  } else {
    http_->Put(pattern, without_body);
    http_->Put(pattern, with_body);
  }
}

void Server::add_routes() {
  httplib::Server& http = *http_;
  http.set_pre_routing_handler([this](const httplib::Request& request, httplib::Response& response) {
    const auto refuse = [&](int status, const std::string& message) {
      refuse_before_the_body(response, status, message);
      return httplib::Server::HandlerResponse::Handled;
    };
    // Answers are computed, not files: Range is ignored (RFC 9110 allows it), where cpp-httplib
    // would copy the answer once per range asked, thousands of times for a small request.
    const_cast<httplib::Request&>(request).ranges.clear();
    if (draining_) response.set_header("Connection", "close");  // clients go elsewhere
    if (refusing_connections) return refuse(503, "too many connections; try again");
    if (const auto problem = framing_problem(request)) return refuse(problem->first, problem->second);
    const std::string& key = options_.api_key();
    if (key.empty() || is_health_check(request.path) || authorized(request, key)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    return refuse(401, "missing or wrong API key (Authorization: Bearer ...)");
  });
  // Clients that ask before sending a large body (curl does above 1 MiB) are refused before
  // they send it when it could not be taken anyway: unauthorized, too large, or when the model
  // could not take the request now. cpp-httplib writes a refusal at once, before routing; the
  // connection then closes, since the client may still send the body it announced.
  http.set_expect_100_continue_handler([this](const httplib::Request& request, httplib::Response& response) {
    const auto refuse = [&](int status, const std::string& message) {
      refuse_before_the_body(response, status, message);
      return status;
    };
    if (const auto problem = framing_problem(request)) return refuse(problem->first, problem->second);
    const std::string& key = options_.api_key();
    if (!key.empty() && !is_health_check(request.path) && !authorized(request, key)) {
      return refuse(401, "missing or wrong API key (Authorization: Bearer ...)");
    }
    const size_t limit = request.path == "/v1/ct/nodules" ? options_.max_scan_bytes() : options_.max_body_bytes();
    const auto declared = parse_unsigned(request.get_header_value("Content-Length"));
    if (declared && *declared > limit) {
      return refuse(413, "the body is larger than this endpoint's limit of " + std::to_string(limit) + " bytes");
    }
    bool has_room = true;
    try {
      std::string model;
      has_room = admission_for(request.path, model).has_room();
    } catch (const RequestError&) {
      // an unknown model: the handler answers it, with its reason
    }
    if (draining_) return refuse(503, "the server is shutting down");
    if (!has_room) return refuse(503, "overloaded; try again");
    return 100;
  });
  // Every answer that says "Connection: close" closes it: refusals that leave a body unread
  // (or the client would have it read as its next request), answers while draining.
  http.set_post_routing_handler([](const httplib::Request&, httplib::Response& response) {
    if (response.get_header_value("Connection") == "close" && !response.content_provider_) close_after(response);
  });
  // An exception that escapes a handler: a JSON 500, not cpp-httplib's EXCEPTION_WHAT header
  // with the exception's text.
  http.set_exception_handler([](const httplib::Request&, httplib::Response& response, std::exception_ptr) {
    response.status = 500;
    response.set_header("Connection", "close");
    response.set_content(error_json("internal error"), "application/json");
  });
  // The library's own refusals (404, 413, malformed requests) get the protocol's error body.
  http.set_error_handler([](const httplib::Request&, httplib::Response& response) {
    if (!response.body.empty()) return;
    response.set_content(error_json(status_reason(response.status)), "application/json");
  });

  http.Get("/v2/health/live", [](const httplib::Request&, httplib::Response& response) {
    response.status = 200;
  });
  http.Get("/v2/health/ready", [this](const httplib::Request&, httplib::Response& response) {
    response.status = ready() ? 200 : 503;
  });
  http.Get("/v2", [](const httplib::Request&, httplib::Response& response) {
    const json metadata = {{"name", "dlwpt-serve"}, {"version", "1"}, {"extensions", {"binary_tensor_data"}}};
    response.set_content(json_text(metadata), "application/json");
  });
  // Metrics carry a model label only for models that exist: client-chosen names would let
  // anyone grow the metrics without bound.
  const std::string& model_path = kModelPath;
  http.Get(model_path, [this](const httplib::Request& request, httplib::Response& response) {
    answer(request, response, "metadata", nullptr, false, [&](Request& context, httplib::Response& out) {
      context.model = model_named(request.matches[1]).name();
      v2_metadata(context.model, out);
    });
  });
  http.Get(model_path + "/ready", [this](const httplib::Request& request, httplib::Response& response) {
    answer(request, response, "ready", nullptr, false, [&](Request& context, httplib::Response& out) {
      context.model = model_named(request.matches[1]).name();
      out.status = ready() ? 200 : 503;
    });
  });

  // Inference routes read their bodies themselves, after admission (answer()). Each is
  // registered twice: cpp-httplib sends requests that may have a body to the content-reader
  // form, others to the plain one.
  add_inference_route("POST", model_path + "/infer", "infer",
                      [this](const httplib::Request& http, Request& context, httplib::Response& out) {
                        v2_infer(http, out, context);
                      });
  add_inference_route("POST", "/predict", "predict",
                      [this](const httplib::Request& http, Request& context, httplib::Response& out) {
                        predict(http, out, context);
                      });
  add_inference_route("PUT", "/image", "image",
                      [this](const httplib::Request& http, Request& context, httplib::Response& out) {
                        zebra_image(http, out, context);
                      });
  add_inference_route("POST", "/v1/ct/nodules", "ct_nodules",
                      [this](const httplib::Request&, Request& context, httplib::Response& out) {
                        ct_nodules(out, context);
                      });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& response) {
    for (const auto& model : models_) metrics_->set_queue_size(model->name(), model->queue_size());
    if (scans_) metrics_->set_queue_size("ct_nodules", scans_->queue_size());
    response.set_content(metrics_->scrape(), "text/plain; version=0.0.4");
  });
}

}  // namespace dlwpt::serve

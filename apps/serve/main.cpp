// dlwpt-serve: the book's three models behind HTTP, with dynamic request batching: the book's
// own endpoints (chapter 15: POST /predict, PUT /image), the KServe v2 / Triton protocol,
// and Prometheus metrics. See README "Serving".

#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <thread>

#include <cxxopts.hpp>
#include <torch/torch.h>

#include "apps/common/cli.h"
#include "apps/serve/server.h"

#if DLWPT_SERVE_TCMALLOC
#include <gperftools/malloc_extension.h>
#endif

using namespace dlwpt::serve;
using dlwpt::apps::UsageError;

namespace {

constexpr const char* kProgram = "dlwpt-serve";
constexpr const char* kEnvironmentPrefix = "DLWPT_SERVE_";
constexpr auto kStopGrace = std::chrono::seconds(2);  // after the drain, for the workers to finish

cxxopts::Options command_line() {
  cxxopts::Options options(kProgram,
                           "Serves the book's models over HTTP with dynamic request batching.\n"
                           "  POST /predict               the book's LunaModel client (multipart meta + blob)\n"
                           "  PUT  /image                 a JPEG or PNG horse; answers the zebra as JPEG\n"
                           "  GET  /v2/health/{live,ready}, /v2/models/NAME[/ready]\n"
                           "  POST /v2/models/NAME/infer  KServe v2 JSON tensors or binary data\n"
                           "  POST /v1/ct/nodules         a CT scan (.mha) through the nodule pipeline,\n"
                           "                              with a segmentation and a nodule model\n"
                           "  GET  /metrics               Prometheus text\n"
                           "Every option may also come from the environment: --max-batch-size as\n"
                           "DLWPT_SERVE_MAX_BATCH_SIZE, --model as DLWPT_SERVE_MODEL (comma-separated).\n"
                           "SIGTERM drains: readiness turns false, queued requests finish, then exit.\n");
  const ServerOptions server;
  const BatcherOptions batching;
  options.add_options()
      ("model", "NAME=ARCHIVE, or NAME=untrained with NAME zebra, nodule or segmentation "
                "(seeded random weights, loudly labelled); repeat for several models",
       cxxopts::value<std::vector<std::string>>())
      ("host", "address to listen on (127.0.0.1: this machine only)",
       cxxopts::value<std::string>()->default_value(server.host()))
      ("port", "port to listen on (0: any free one, printed)",
       cxxopts::value<int>()->default_value(std::to_string(server.port())))
      ("instances", "copies of each model, each on its own runner thread (0: the model's "
                    "default: one per core for LunaModel, one for the others)",
       cxxopts::value<int>()->default_value("0"))
      ("threads", "intra-op threads of each instance (0: the cores shared among the instances)",
       cxxopts::value<int>()->default_value("0"))
      ("precision", "float32; bfloat16 for every model (faster where the CPU has AMX or "
       "AVX512_BF16); or int8, for CycleGAN generators only, calibrated on --calibrate-on (see "
       "README for the accuracy of each)", cxxopts::value<std::string>()->default_value("float32"))
      ("calibrate-on", "int8: JPEG or PNG pictures, or folders of them, like the ones the server "
                       "will convert: their conversion sets the int8 scales",
       cxxopts::value<std::vector<std::string>>())
      ("max-batch-size", "requests a model runs together at most",
       cxxopts::value<int64_t>()->default_value("1"))
      ("max-queue-delay-us", "how long the oldest request may wait for a batch to fill",
       cxxopts::value<int64_t>()->default_value("0"))
      ("max-queue-size", "requests that may wait per model; more get 503 with Retry-After",
       cxxopts::value<int64_t>()->default_value(std::to_string(batching.max_queue_size())))
      ("timeout-ms", "a request's deadline (504 after); a Request-Timeout-Ms header may lower it",
       cxxopts::value<int64_t>()->default_value(std::to_string(server.request_timeout().count())))
      ("drain-timeout-ms", "on SIGTERM, how long running requests may take",
       cxxopts::value<int64_t>()->default_value(std::to_string(server.drain_timeout().count())))
      ("http-threads", "requests answered at once (threads that decode, encode and wait for the models)",
       cxxopts::value<int>()->default_value(std::to_string(server.http_threads())))
      ("max-waiting-connections", "connections that may be open beyond --http-threads (idle, sending, "
                                  "or waiting for a thread); more get 503",
       cxxopts::value<int>()->default_value(std::to_string(server.max_waiting_connections())))
      ("max-body-mb", "largest request body in MiB (413 beyond)",
       cxxopts::value<int64_t>()->default_value(std::to_string(server.max_body_bytes() >> 20)))
      ("max-scan-mb", "largest /v1/ct/nodules body in MiB",
       cxxopts::value<int64_t>()->default_value(std::to_string(server.max_scan_bytes() >> 20)))
      ("max-scan-queue", "scans that may wait for /v1/ct/nodules (they run one at a time)",
       cxxopts::value<int64_t>()->default_value("4"))
      ("io-timeout-s", "time for a request's whole head, and the least for its body or answer "
                       "(slow clients are disconnected)",
       cxxopts::value<int64_t>()->default_value(std::to_string(std::chrono::duration_cast<std::chrono::seconds>(server.io_timeout()).count())))
      ("max-pixels", "images larger than this are refused (413) from their header",
       cxxopts::value<int64_t>()->default_value(std::to_string(server.max_image_pixels())))
      ("image-size", "PUT /image scales the longer side down to this before the generator (0: never)",
       cxxopts::value<int64_t>()->default_value(std::to_string(server.image_max_side())))
      ("api-key-file", "a file holding the API key: requests then need Authorization: Bearer KEY "
                       "(health checks excepted)",
       cxxopts::value<std::string>())
      ("prediction-log", "append one JSON line per inference request to this file",
       cxxopts::value<std::string>())
      ("h,help", "print this help");
  return options;
}

// "--max-batch-size" -> "DLWPT_SERVE_MAX_BATCH_SIZE".
std::string environment_name(const std::string& option) {
  std::string name = kEnvironmentPrefix;
  for (const char c : option) name += c == '-' ? '_' : static_cast<char>(std::toupper(c));
  return name;
}

bool given_on_command_line(const std::string& option, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string argument = argv[i];
    if (argument == "--" + option || argument.rfind("--" + option + "=", 0) == 0) return true;
  }
  return false;
}

// The command line with options the environment sets and the command line does not.
std::vector<std::string> with_environment(const cxxopts::Options& options, int argc, char** argv) {
  std::vector<std::string> arguments(argv, argv + argc);
  for (const auto& group : options.groups()) {
    for (const auto& option : options.group_help(group).options) {
      if (option.l.empty() || option.l.front() == "help") continue;
      const char* value = std::getenv(environment_name(option.l.front()).c_str());
      if (value && !given_on_command_line(option.l.front(), argc, argv)) {
        arguments.push_back("--" + option.l.front() + "=" + value);
      }
    }
  }
  return arguments;
}

std::string read_api_key(const std::string& path) {
  std::ifstream file(path);
  std::string key;
  if (!file || !std::getline(file, key)) throw UsageError("--api-key-file '" + path + "': cannot read a key from it");
  while (!key.empty() && std::isspace(static_cast<unsigned char>(key.back()))) key.pop_back();
  if (key.size() < 16) throw UsageError("--api-key-file '" + path + "': the key must have at least 16 characters");
  return key;
}

template <typename T>
T positive(const cxxopts::ParseResult& args, const std::string& option) {
  const T value = args[option].as<T>();
  if (value <= 0) throw UsageError("--" + option + " must be positive");
  return value;
}

ServerOptions server_options(const cxxopts::ParseResult& args) {
  ServerOptions options;
  const int64_t body_mb = positive<int64_t>(args, "max-body-mb");
  const int64_t scan_mb = positive<int64_t>(args, "max-scan-mb");
  if (body_mb > 4096 || scan_mb > 4096) throw UsageError("--max-body-mb and --max-scan-mb: at most 4096");
  if (args["port"].as<int>() < 0 || args["port"].as<int>() > 65535) throw UsageError("--port: 0 to 65535");
  const int http_threads = positive<int>(args, "http-threads");
  if (http_threads > 4096) throw UsageError("--http-threads: at most 4096");
  options.host(args["host"].as<std::string>())
      .port(args["port"].as<int>())
      .http_threads(http_threads)
      .max_waiting_connections(positive<int>(args, "max-waiting-connections"))
      .max_body_bytes(static_cast<size_t>(body_mb) << 20)
      .max_scan_bytes(static_cast<size_t>(scan_mb) << 20)
      .request_timeout(std::chrono::milliseconds(positive<int64_t>(args, "timeout-ms")))
      .drain_timeout(std::chrono::milliseconds(positive<int64_t>(args, "drain-timeout-ms")))
      .io_timeout(std::chrono::seconds(positive<int64_t>(args, "io-timeout-s")))
      .max_image_pixels(positive<int64_t>(args, "max-pixels"))
      .image_max_side(args["image-size"].as<int64_t>());
  if (options.image_max_side() < 0) throw UsageError("--image-size must be >= 0");
  if (args.count("api-key-file")) options.api_key(read_api_key(args["api-key-file"].as<std::string>()));
  if (args.count("prediction-log")) options.prediction_log(args["prediction-log"].as<std::string>());
  return options;
}

BatcherOptions batcher_options(const cxxopts::ParseResult& args) {
  const int64_t delay = args["max-queue-delay-us"].as<int64_t>();
  if (delay < 0 || delay > 10'000'000) throw UsageError("--max-queue-delay-us: 0 to 10000000");
  return BatcherOptions()
      .max_batch_size(positive<int64_t>(args, "max-batch-size"))
      .max_queue_delay(std::chrono::microseconds(delay))
      .max_queue_size(positive<int64_t>(args, "max-queue-size"));
}

// --precision. int8 needs --calibrate-on, and is for CycleGAN generators only (ServedModel
// refuses the other models, and the CT scans, whose candidates int8 changes).
dlwpt::Precision served_precision(const cxxopts::ParseResult& args) {
  const dlwpt::Precision precision = dlwpt::parse_precision(args["precision"].as<std::string>());
  if (precision == dlwpt::Precision::int8 && !args.count("calibrate-on")) {
    throw UsageError("--precision int8 needs --calibrate-on: pictures like the ones the server will convert, "
                     "whose conversion sets the int8 scales");
  }
  if (precision != dlwpt::Precision::int8 && args.count("calibrate-on")) {
    throw UsageError("--calibrate-on is for --precision int8");
  }
  return precision;
}

// The pictures of --calibrate-on, read once for every int8 generator instance.
std::shared_ptr<const Int8Calibration> int8_calibration(const cxxopts::ParseResult& args) {
  if (!args.count("calibrate-on")) return nullptr;
  auto calibration = std::make_shared<Int8Calibration>();
  for (const auto& path : dlwpt::apps::image_files(kProgram, args["calibrate-on"].as<std::vector<std::string>>())) {
    calibration->pictures.push_back(dlwpt::apps::load_image(path));
  }
  if (calibration->pictures.empty()) throw UsageError("--calibrate-on names no JPEG or PNG pictures");
  calibration->max_side = args["image-size"].as<int64_t>();
  return calibration;
}

// --instances and --threads, 0 (each model's measured default, ServedModel) unless given.
ModelPlacement model_placement(const cxxopts::ParseResult& args) {
  const int instances = args["instances"].as<int>();
  if (instances < 0 || instances > 64) throw UsageError("--instances: 0 (the model's default) to 64");
  const int threads = args["threads"].as<int>();
  return {instances, threads == 0 ? 0 : dlwpt::apps::checked_thread_count("--threads", threads),
          dlwpt::apps::available_cores(), served_precision(args), int8_calibration(args)};
}

std::vector<std::unique_ptr<ServedModel>> load_models(const cxxopts::ParseResult& args,
                                                      const BatcherOptions& batching,
                                                      const std::shared_ptr<Metrics>& metrics) {
  if (!args.count("model")) throw UsageError("give at least one --model NAME=ARCHIVE (see --help)");
  const ModelPlacement placement = model_placement(args);
  std::vector<std::unique_ptr<ServedModel>> models;
  for (const auto& text : args["model"].as<std::vector<std::string>>()) {
    const ModelSource source = parse_model_source(text);
    for (const auto& loaded : models) {
      if (loaded->name() == source.name) throw UsageError("--model " + source.name + " is given twice");
    }
    models.push_back(std::make_unique<ServedModel>(
        source, batching, placement, [metrics](const std::string& name, const BatchStats& stats) {
          metrics->observe_batch(name, stats);
        }));
    const auto& model = *models.back();
    std::cerr << kProgram << ": model " << model.name() << ": " << model.description() << "\n";
    if (!model.trained()) {
      std::cerr << kProgram << ": WARNING: model " << model.name()
                << " has UNTRAINED random weights; its answers mean nothing\n";
    }
  }
  return models;
}

// SIGTERM and SIGINT reach a watcher thread through a pipe: a signal handler may only do
// async-signal-safe work, and the signal may land on any thread (OpenBLAS and OpenMP start
// theirs before main, so blocking it in every thread cannot be arranged). Byte 0 on the pipe
// means the server stopped by itself.
int stop_pipe[2] = {-1, -1};

void forward_signal(int signal) {
  const unsigned char number = static_cast<unsigned char>(signal);
  [[maybe_unused]] const auto written = write(stop_pipe[1], &number, 1);
}

void forward_stop_signals() {
  if (pipe(stop_pipe) != 0) throw std::runtime_error("cannot create the signal pipe");
  struct sigaction action {};
  action.sa_handler = forward_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

int next_stop_signal() {
  unsigned char number = 0;
  while (read(stop_pipe[0], &number, 1) < 0 && errno == EINTR) {
  }
  return number;
}

// /v1/ct/nodules runs when a U-Net and a nodule classifier are served (both then load twice:
// as served models, and typed for the pipeline, which is small beside a scan's memory).
std::unique_ptr<ScanService> scan_service(const cxxopts::ParseResult& args,
                                          const std::vector<std::unique_ptr<ServedModel>>& models,
                                          const std::shared_ptr<Metrics>& metrics) {
  const ServedModel* segmentation = nullptr;
  const ServedModel* nodule = nullptr;
  for (const auto& model : models) {
    if (model->kind() == ModelKind::segmentation && !segmentation) segmentation = model.get();
    if (model->kind() == ModelKind::nodule && !nodule) nodule = model.get();
  }
  if (!segmentation || !nodule) return nullptr;
  std::cerr << kProgram << ": /v1/ct/nodules: " << segmentation->name() << " and " << nodule->name() << "\n";
  return std::make_unique<ScanService>(
      segmentation->source(), nodule->source(), positive<int64_t>(args, "max-scan-queue"),
      served_precision(args),
      [metrics](const std::string& name, const BatchStats& stats) { metrics->observe_batch(name, stats); });
}

// The server is the one program here where many threads allocate at once: HTTP threads hold
// request bodies and parsed inputs (7 MiB for a U-Net slice) for as long as they wait in a
// queue, while the runners allocate and free their activations. glibc's malloc serves that
// badly either way. With an arena per thread (its default), a runner's arena returned its
// activations' pages and faulted them afresh on every request (the U-Net: 84-92 ms per slice
// in the server against 66-68 ms offline). With one arena, long-lived bodies sit between the
// activations and the heap keeps growing: 2.5 GB and still faulting after 10 s of 64
// connections sending slices. tcmalloc (linked when the build finds it) caches freed blocks by
// size for every thread; it is told to keep them, since a fresh page costs microseconds to
// fault here.
void configure_malloc() {
#if DLWPT_SERVE_TCMALLOC
  MallocExtension::instance()->SetMemoryReleaseRate(0.0);
  size_t allocated = 0;
  if (!MallocExtension::instance()->GetNumericProperty("generic.current_allocated_bytes", &allocated) ||
      allocated == 0) {
    std::cerr << kProgram << ": warning: tcmalloc is linked but is not the malloc in use\n";
  }
#elif defined(__GLIBC__)
  mallopt(M_ARENA_MAX, 1);
#endif
}

int serve(const cxxopts::ParseResult& args) {
  configure_malloc();
  forward_stop_signals();
  // Each model runner sets its own count (ServedModel); other torch work uses every core.
  std::cerr << kProgram << ": " << dlwpt::apps::cpu_budget_description() << "\n";
  torch::set_num_threads(dlwpt::apps::available_cores());
  const ServerOptions options = server_options(args);
  const auto metrics = std::make_shared<Metrics>();
  const BatcherOptions batching = batcher_options(args);
  auto models = load_models(args, batching, metrics);
  auto scans = scan_service(args, models, metrics);
  Server server(options, std::move(models), std::move(scans), metrics);
  const int port = server.bind();
  std::cout << kProgram << ": listening on http://" << options.host() << ":" << port << std::endl;

  std::atomic<int> status{0};
  std::atomic<bool> served{false};
  std::thread signal_watcher([&] {
    const int signal = next_stop_signal();
    if (signal == 0) return;  // the server stopped by itself
    std::cerr << kProgram << ": " << (signal == SIGTERM ? "SIGTERM" : "SIGINT")
              << ": draining (readiness is false, new requests get 503)\n";
    const bool drained = server.drain_and_stop();
    std::cerr << kProgram << ": "
              << (drained ? "every request answered; stopped"
                          : "drain timeout passed with requests still running; stopped")
              << "\n";
    status = drained ? 0 : 1;
    // The drain timeout is the promise: should a worker still be busy past it (a picture being
    // decoded), the process ends without it.
    const auto give_up = std::chrono::steady_clock::now() + kStopGrace;
    while (!served && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!served) {
      std::cerr << kProgram << ": requests still computing after the drain; exiting without them\n";
      std::cout.flush();
      std::_Exit(status);
    }
  });
  server.serve();
  served = true;
  forward_signal(0);
  signal_watcher.join();
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options options = command_line();
  std::vector<std::string> arguments = with_environment(options, argc, argv);
  std::vector<char*> pointers;
  for (auto& argument : arguments) pointers.push_back(argument.data());
  return dlwpt::apps::run_app(kProgram, static_cast<int>(pointers.size()), pointers.data(), options, serve);
}

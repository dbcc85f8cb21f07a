// dlwpt-bench: times one model with one engine (or the machine's matrix-product peak) and
// prints the result as one JSON line; tools/testing/benchmark.py runs it case by case, each in its
// own process so that its peak memory is its own.

#include <algorithm>
#include <chrono>
#include <iostream>
#include <sstream>

#include <cxxopts.hpp>
#include <opencv2/dnn.hpp>
#include <torch/script.h>
#include <torch/torch.h>

#include "apps/common/cpu_budget.h"
#include "apps/common/openblas.h"
#include "dlwpt/layers/inference.h"
#include "dlwpt/layers/int8.h"
#include "dlwpt/models/inference.h"
#include "dlwpt/training/losses.h"
#include "dlwpt/training/optimizer.h"
#include "dlwpt/weights/errors.h"
#include "dlwpt/weights/model_archive.h"
#include "dlwpt/weights/numbers.h"

namespace {

std::vector<int64_t> parse_shape(const std::string& text) {
  std::vector<int64_t> shape;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');) {
    const auto side = dlwpt::parse_integer(part);
    if (!side || *side <= 0 || *side > 100000) {
      throw std::invalid_argument("bad --shape '" + text + "': sides from 1 to 100000, by commas");
    }
    shape.push_back(*side);
  }
  if (shape.empty()) throw std::invalid_argument("empty --shape");
  return shape;
}

// Runs `step` `warmup` times unmeasured, then `runs` times; returns the times in ms, sorted.
std::vector<double> time_runs(const std::function<void()>& step, int warmup, int runs) {
  for (int i = 0; i < warmup; ++i) step();
  std::vector<double> times;
  for (int i = 0; i < runs; ++i) {
    const auto start = std::chrono::steady_clock::now();
    step();
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times;
}

std::function<void()> native_step(const std::string& archive, const torch::Tensor& input,
                                  dlwpt::Precision precision) {
  // int8 calibrates on the timed input itself: its ranges do not change the speed.
  auto model = std::make_shared<dlwpt::weights::AnyModel>(dlwpt::weights::load_any_model(
      archive, dlwpt::weights::Optimization::for_inference,
      dlwpt::InferenceOptions().precision(precision).calibration_inputs({input})));
  return [model, input] {
    torch::InferenceMode guard;
    model->forward(input);
  };
}

// One training step of the book's recipe for the archive's model: SGD and cross entropy for
// LunaModel, Adam and the Dice + false-negative loss for the U-Net, on fixed random labels.
std::function<void()> training_step(const std::string& archive, const torch::Tensor& input) {
  // The model as written (Optimization::none): the inference preparation freezes the
  // parameters and runs batches sample by sample, which training cannot use.
  auto model = std::make_shared<dlwpt::weights::AnyModel>(
      dlwpt::weights::load_any_model(archive, dlwpt::weights::Optimization::none));
  model->module->train();
  const std::string& name = model->config.model;
  if (name != "LunaModel" && name != "UNetWrapper") {
    throw std::invalid_argument("--train times LunaModel and UNetWrapper archives, not " + name);
  }
  const bool classifier = name == "LunaModel";
  namespace tr = dlwpt::training;
  std::shared_ptr<torch::optim::Optimizer> optimizer = tr::make_optimizer(
      model->module->parameters(),
      classifier ? tr::book_classification_optimizer() : tr::book_segmentation_optimizer());
  torch::manual_seed(0);
  const auto labels = classifier ? torch::randint(0, 2, {input.size(0)}, torch::kLong)
                                 : (torch::rand({input.size(0), 1, input.size(2), input.size(3)}) > 0.9)
                                       .to(torch::kFloat);
  return [model, optimizer, input, labels, classifier] {
    optimizer->zero_grad();
    const auto outputs = model->forward(input);
    const auto loss = classifier ? tr::classification_loss(outputs.at("logits"), labels)
                                 : tr::segmentation_loss(outputs.at("output"), labels);
    loss.backward();
    optimizer->step();
  };
}

std::function<void()> jit_step(const std::string& archive, const torch::Tensor& input) {
  auto module = std::make_shared<torch::jit::Module>(torch::jit::load(archive, torch::kCPU));
  module->eval();
  return [module, input] {
    torch::InferenceMode guard;
    module->forward({input});
  };
}

std::function<void()> opencv_step(const std::string& onnx, const std::vector<int64_t>& shape) {
  auto net = std::make_shared<cv::dnn::Net>(cv::dnn::readNetFromONNX(onnx));
  net->setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
  std::vector<int> sizes(shape.begin(), shape.end());
  auto blob = std::make_shared<cv::Mat>(static_cast<int>(sizes.size()), sizes.data(), CV_32F);
  cv::randu(*blob, 0.0f, 1.0f);
  return [net, blob] {
    net->setInput(*blob);
    std::vector<cv::Mat> outputs;
    net->forward(outputs, net->getUnconnectedOutLayersNames());
  };
}

// A float32 2048^3 matrix product: what the machine's BLAS sustains.
std::function<void()> matmul_step() {
  auto a = torch::rand({2048, 2048});
  auto b = torch::rand({2048, 2048});
  return [a, b] { torch::mm(a, b); };
}

// A 2048^3 matrix product as a 1x1 convolution (2048 channels to 2048 over 32 x 64 pixels),
// computed by the kernels the models compute with at `precision`: ATen's oneDNN convolution
// in float32 and bfloat16, Int8Conv2d (oneDNN's int8 convolution) in int8. The practical peak
// of a precision; oneDNN's float32 kernels can beat the BLAS matrix product.
std::function<void()> convolution_peak_step(dlwpt::Precision precision) {
  torch::nn::Conv2d layer(torch::nn::Conv2dOptions(2048, 2048, 1).bias(false));
  layer->eval();
  auto input = torch::rand({1, 2048, 32, 64}).contiguous(torch::MemoryFormat::ChannelsLast);
  torch::NoGradGuard no_gradients;
  if (precision == dlwpt::Precision::int8) {
    if (const auto reason = dlwpt::int8_unsupported_reason()) throw dlwpt::ConfigError("int8: " + *reason);
    dlwpt::Int8Conv2d int8(layer);
    int8->forward(input);  // calibration: the input's range
    int8->finish_calibration();
    return [int8, input]() mutable {
      torch::InferenceMode guard;
      int8->forward(input);
    };
  }
  if (precision == dlwpt::Precision::bfloat16) {
    if (const auto reason = dlwpt::bfloat16_unsupported_reason()) throw dlwpt::ConfigError("bfloat16: " + *reason);
    layer->to(torch::kBFloat16);
    input = input.to(torch::kBFloat16);
  }
  return [layer, input]() mutable {
    torch::InferenceMode guard;
    layer->forward(input);
  };
}

}  // namespace

int main(int argc, char** argv) {
  dlwpt::apps::select_openblas_kernels(argv);
  dlwpt::keep_freed_memory_for_reuse();  // as the apps do, for every C++ engine alike
  cxxopts::Options options("dlwpt-bench", "Times one model with one engine; prints a JSON line.");
  options.add_options()
      ("engine", "native, jit, opencv, matmul (BLAS, float32) or peak (a 1x1 convolution at --precision)", cxxopts::value<std::string>())
      ("archive", "TorchScript archive (native, jit) or ONNX file (opencv)", cxxopts::value<std::string>())
      ("shape", "input shape, e.g. 1,3,256,256", cxxopts::value<std::string>()->default_value("1"))
      ("runs", "measured runs", cxxopts::value<int>()->default_value("5"))
      ("warmup", "unmeasured runs first", cxxopts::value<int>()->default_value("1"))
      ("threads", "intra-op threads (0: all cores)", cxxopts::value<int>()->default_value("0"))
      ("precision", "native and peak engines: float32, bfloat16 or int8 (calibrated on the timed input)", cxxopts::value<std::string>()->default_value("float32"))
      ("train", "native engine: time training steps (the book's recipe) instead of inference")
      ("h,help", "print this help");
  try {
    const auto args = options.parse(argc, argv);
    if (args.count("help") || !args.count("engine")) {
      std::cout << options.help() << "\n";
      return args.count("help") ? 0 : 2;
    }
    const int threads = args["threads"].as<int>();
    const int used_threads = threads > 0 ? threads : dlwpt::apps::available_cores();
    torch::set_num_threads(used_threads);
    cv::setNumThreads(used_threads);
    const std::string engine = args["engine"].as<std::string>();
    const auto shape = parse_shape(args["shape"].as<std::string>());
    const auto input = torch::rand(shape, torch::TensorOptions().dtype(torch::kFloat));
    const std::string archive = args.count("archive") ? args["archive"].as<std::string>() : "";
    if (engine != "matmul" && engine != "peak" && archive.empty()) throw std::invalid_argument("--archive is needed");

    std::function<void()> step;
    if (engine == "native" && args.count("train")) {
      step = training_step(archive, input);
    } else if (engine == "native") {
      step = native_step(archive, input, dlwpt::parse_precision(args["precision"].as<std::string>()));
    } else if (engine == "jit") {
      step = jit_step(archive, input);
    } else if (engine == "opencv") {
      step = opencv_step(archive, shape);
    } else if (engine == "matmul") {
      step = matmul_step();
    } else if (engine == "peak") {
      step = convolution_peak_step(dlwpt::parse_precision(args["precision"].as<std::string>()));
    } else {
      throw std::invalid_argument("unknown engine " + engine);
    }
    const auto times = time_runs(step, args["warmup"].as<int>(), std::max(1, args["runs"].as<int>()));
    std::ostringstream line;
    line << "{\"median_ms\": " << times[times.size() / 2] << ", \"min_ms\": " << times.front()
         << ", \"max_ms\": " << times.back() << ", \"threads\": " << used_threads
         << ", \"precision\": \"" << args["precision"].as<std::string>() << "\""
         << ", \"times_ms\": [";
    for (size_t i = 0; i < times.size(); ++i) line << (i ? ", " : "") << times[i];
    std::cout << line.str() << "]}" << std::endl;
    return 0;
  } catch (const cv::Exception& error) {
    std::cerr << "dlwpt-bench: OpenCV: " << error.what() << "\n";
    return 3;  // the model does not import or run in OpenCV DNN
  } catch (const c10::Error& error) {
    std::cerr << "dlwpt-bench: " << error.what_without_backtrace() << "\n";
  } catch (const std::exception& error) {
    std::cerr << "dlwpt-bench: " << error.what() << "\n";
  }
  return 2;
}

#include "weights/archive.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <torch/script.h>

namespace dlwpt::weights {

namespace fs = std::filesystem;

namespace {

std::string shape_string(const torch::Tensor& tensor) {
  std::ostringstream out;
  out << tensor.sizes();
  return out.str();
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

// Why jit::load rejected a file, told from its first bytes.
std::string describe_unreadable_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  char magic[4] = {};
  file.read(magic, sizeof magic);
  const auto size = file.gcount();
  if (size == 0) return "the file is empty";
  if (size >= 2 && static_cast<unsigned char>(magic[0]) == 0x80 && magic[1] <= 0x05) {
    return "it is a legacy (non-zip) torch.save pickle, such as the book's .state and .pth "
           "checkpoints: convert it with tools/convert.py";
  }
  if (size == 4 && std::string(magic, 4) == std::string("PK\x03\x04", 4)) {
    return "it is a zip file but not a complete TorchScript archive (truncated, or a plain "
           "torch.save pickle: convert it with tools/convert.py)";
  }
  return "it is not a TorchScript archive";
}

void check_readable_file(const std::string& path) {
  std::error_code error;
  const auto status = fs::status(path, error);
  if (!fs::exists(status)) throw ArchiveError("weights archive '" + path + "' does not exist");
  if (!fs::is_regular_file(status)) {
    throw ArchiveError("weights archive '" + path + "' is not a regular file");
  }
  if (!std::ifstream(path, std::ios::binary)) {
    throw ArchiveError("weights archive '" + path + "' cannot be opened for reading");
  }
}

void append_list(std::ostringstream& out, const char* title,
                 const std::vector<std::string>& items) {
  if (items.empty()) return;
  out << "\n  " << title << " (" << items.size() << "):";
  for (const auto& item : items) out << "\n    " << item;
}

TensorMap strip_prefix(const TensorMap& tensors, const std::string& prefix) {
  if (prefix.empty()) return tensors;
  TensorMap stripped;
  for (const auto& [name, tensor] : tensors) {
    if (name.compare(0, prefix.size(), prefix) == 0) {
      stripped.emplace(name.substr(prefix.size()), tensor);
    }
  }
  return stripped;
}

// Builds the nested TorchScript modules that dotted names stand for, as torch::save does: a
// module per name component, the tensors as its parameters or buffers.
class ArchiveBuilder {
 public:
  ArchiveBuilder() : unit_(std::make_shared<torch::jit::CompilationUnit>()), root_(new_module()) {}

  void add(const std::string& name, const torch::Tensor& tensor, bool is_parameter) {
    const size_t last_dot = name.rfind('.');
    torch::jit::Module node =
        last_dot == std::string::npos ? root_ : module_at(name.substr(0, last_dot));
    node.register_parameter(name.substr(last_dot + 1), tensor.detach(),
                            /*is_buffer=*/!is_parameter);
  }

  void save(const std::string& path, const torch::jit::ExtraFilesMap& extra_files) const {
    root_.save(path, extra_files);
  }

 private:
  torch::jit::Module new_module() const {
    return torch::jit::Module("__torch__.Module", unit_, /*shouldMangle=*/true);
  }

  // The module for a dotted path such as "unet.down_path.0", created with its parents.
  torch::jit::Module module_at(const std::string& path) {
    const auto existing = modules_.find(path);
    if (existing != modules_.end()) return existing->second;
    const size_t last_dot = path.rfind('.');
    torch::jit::Module parent =
        last_dot == std::string::npos ? root_ : module_at(path.substr(0, last_dot));
    torch::jit::Module module = new_module();
    parent.register_module(path.substr(last_dot + 1), module);
    modules_.emplace(path, module);
    return module;
  }

  std::shared_ptr<torch::jit::CompilationUnit> unit_;
  torch::jit::Module root_;
  std::map<std::string, torch::jit::Module> modules_;
};

// Writes through a temporary file in the same folder, renamed into place when complete.
void save_atomically(const ArchiveBuilder& builder, const std::string& path,
                     const torch::jit::ExtraFilesMap& extra_files) {
  const fs::path temporary = path + ".partial";
  try {
    builder.save(temporary.string(), extra_files);
    fs::rename(temporary, path);
  } catch (const std::exception& error) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    throw ArchiveError("cannot write weights archive '" + path + "': " +
                       first_line(error.what()));
  }
}

}  // namespace

ModelConfig ModelConfig::parse(const std::string& text) {
  ModelConfig config;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto equals = line.find('=');
    if (equals == std::string::npos) {
      throw ArchiveError("malformed model configuration line '" + line + "' (expected key=value)");
    }
    const std::string key = line.substr(0, equals);
    const std::string value = line.substr(equals + 1);
    if (key == "model") {
      config.model = value;
    } else {
      config.options[key] = value;
    }
  }
  if (config.model.empty()) throw ArchiveError("model configuration names no model");
  return config;
}

std::string ModelConfig::to_text() const {
  std::string text = "model=" + model + "\n";
  for (const auto& [key, value] : options) text += key + "=" + value + "\n";
  return text;
}

const std::string& ModelConfig::text(const std::string& key) const {
  const auto found = options.find(key);
  if (found == options.end()) {
    throw ArchiveError("the " + model + " configuration lacks the option '" + key + "'");
  }
  return found->second;
}

int64_t ModelConfig::integer(const std::string& key) const {
  const std::string& value = text(key);
  size_t used = 0;
  int64_t number = 0;
  try {
    number = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size()) {
    throw ArchiveError("option '" + key + "' of the " + model + " configuration is '" + value +
                       "', not an integer");
  }
  return number;
}

bool ModelConfig::boolean(const std::string& key) const {
  const std::string& value = text(key);
  if (value == "true" || value == "True" || value == "1") return true;
  if (value == "false" || value == "False" || value == "0") return false;
  throw ArchiveError("option '" + key + "' of the " + model + " configuration is '" + value +
                     "', not true or false");
}

TensorMap state_dict(const torch::nn::Module& module) {
  TensorMap tensors;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    tensors.emplace(item.key(), item.value());
  }
  for (const auto& item : module.named_buffers(/*recurse=*/true)) {
    tensors.emplace(item.key(), item.value());
  }
  return tensors;
}

Archive read_archive(const std::string& path) {
  check_readable_file(path);
  torch::jit::ExtraFilesMap extra_files{{ModelConfig::kArchiveEntry, ""}};
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, torch::kCPU, extra_files);
  } catch (const c10::Error& error) {
    throw ArchiveError("cannot read weights archive '" + path + "': " +
                       describe_unreadable_file(path) + " (" +
                       first_line(error.what_without_backtrace()) + ")");
  }
  Archive archive;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    archive.tensors.emplace(item.name, item.value);
  }
  for (const auto& item : module.named_buffers(/*recurse=*/true)) {
    archive.tensors.emplace(item.name, item.value);
  }
  if (archive.tensors.empty()) {
    throw ArchiveError("weights archive '" + path + "' holds no parameters or buffers");
  }
  const std::string& config_text = extra_files[ModelConfig::kArchiveEntry];
  if (!config_text.empty()) {
    try {
      archive.model_config = ModelConfig::parse(config_text);
    } catch (const ArchiveError& error) {
      throw ArchiveError("weights archive '" + path + "': " + error.what());
    }
  }
  return archive;
}

LoadReport load_state_dict(torch::nn::Module& module, const TensorMap& tensors,
                           const LoadOptions& options) {
  const TensorMap source = strip_prefix(tensors, options.prefix());
  const TensorMap target = state_dict(module);

  LoadReport report;
  std::vector<std::string> mismatched;
  for (const auto& [name, destination] : target) {
    const auto found = source.find(name);
    if (found == source.end()) {
      report.missing.push_back(name + " " + shape_string(destination));
    } else if (!found->second.sizes().equals(destination.sizes())) {
      mismatched.push_back(name + ": module has shape " + shape_string(destination) +
                           ", archive has " + shape_string(found->second));
    } else if (found->second.scalar_type() != destination.scalar_type()) {
      mismatched.push_back(name + ": module has dtype " +
                           std::string(c10::toString(destination.scalar_type())) +
                           ", archive has " + c10::toString(found->second.scalar_type()));
    } else {
      report.loaded.push_back(name);
    }
  }
  for (const auto& [name, tensor] : source) {
    if (target.count(name) == 0) report.unexpected.push_back(name + " " + shape_string(tensor));
  }

  const bool unmatched_names = !report.missing.empty() || !report.unexpected.empty();
  if (!mismatched.empty() || (options.strict() && unmatched_names)) {
    std::ostringstream message;
    message << "tensors do not fit " << module.name() << ": " << report.missing.size()
            << " missing, " << report.unexpected.size() << " unexpected, " << mismatched.size()
            << " mismatched";
    append_list(message, "missing from the archive", report.missing);
    append_list(message, "unexpected in the archive", report.unexpected);
    append_list(message, "mismatched", mismatched);
    throw ArchiveError(message.str());
  }

  torch::NoGradGuard no_grad;
  for (const auto& name : report.loaded) target.at(name).copy_(source.at(name));
  return report;
}

LoadReport load_archive(torch::nn::Module& module, const std::string& path,
                        const LoadOptions& options) {
  const Archive archive = read_archive(path);
  try {
    return load_state_dict(module, archive.tensors, options);
  } catch (const ArchiveError& error) {
    throw ArchiveError("weights archive '" + path + "': " + error.what());
  }
}

void save_archive(const torch::nn::Module& module, const std::string& path,
                  const std::optional<ModelConfig>& model_config) {
  ArchiveBuilder builder;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    builder.add(item.key(), item.value(), /*is_parameter=*/true);
  }
  for (const auto& item : module.named_buffers(/*recurse=*/true)) {
    builder.add(item.key(), item.value(), /*is_parameter=*/false);
  }
  torch::jit::ExtraFilesMap extra_files;
  if (model_config) extra_files[ModelConfig::kArchiveEntry] = model_config->to_text();
  save_atomically(builder, path, extra_files);
}

void write_archive(const TensorMap& tensors, const std::string& path) {
  ArchiveBuilder builder;
  for (const auto& [name, tensor] : tensors) builder.add(name, tensor, /*is_parameter=*/false);
  save_atomically(builder, path, {});
}

}  // namespace dlwpt::weights

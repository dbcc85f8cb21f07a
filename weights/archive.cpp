#include "dlwpt/weights/archive.h"

#include <cstring>
#include <tuple>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/unpickler.h>
#include <torch/script.h>

#include "dlwpt/weights/atomic_file.h"
#include "dlwpt/weights/numbers.h"
#include "dlwpt/weights/zip_directory.h"

namespace dlwpt::weights {

namespace fs = std::filesystem;

namespace {

std::string shape_string(const torch::Tensor& tensor) {
  std::ostringstream out;
  out << tensor.sizes();
  return out.str();
}


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
  if (const auto problem = regular_file_problem(path)) {
    throw ArchiveError("weights archive '" + path + "' " + *problem);
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

// The dtypes a weights archive may hold: floating point parameters and buffers, and integer
// counters such as BatchNorm's num_batches_tracked.
bool is_accepted_dtype(torch::ScalarType type) {
  return c10::isFloatingType(type) || c10::isIntegralType(type, /*includeBool=*/true);
}

// Why a tensor read from an archive cannot be used as it is, or "" when it can: its sizes,
// strides and offset, taken from the archive's pickle, must stay within the `available` bytes
// of its record.
std::string tensor_defect(const torch::Tensor& tensor, int64_t available) {
  if (tensor.layout() != torch::kStrided) return "is not a dense tensor";
  if (!is_accepted_dtype(tensor.scalar_type())) {
    return std::string("has dtype ") + c10::toString(tensor.scalar_type()) +
           " (expected a floating point or integer type)";
  }
  if (tensor.storage_offset() < 0) return "has a negative storage offset";
  for (const int64_t stride : tensor.strides()) {
    if (stride < 0) return "has a negative stride";
  }
  if (tensor.numel() == 0) return "";
  // Offset of the last element the sizes and strides reach, overflow-checked.
  int64_t last = tensor.storage_offset();
  for (int64_t dim = 0; dim < tensor.dim(); ++dim) {
    int64_t step = 0;
    if (__builtin_mul_overflow(tensor.size(dim) - 1, tensor.stride(dim), &step) ||
        __builtin_add_overflow(last, step, &last)) {
      return "has sizes and strides that overflow";
    }
  }
  const auto item_size = static_cast<int64_t>(tensor.element_size());
  int64_t needed = 0;
  if (__builtin_mul_overflow(last + 1, item_size, &needed) || needed > available) {
    std::ostringstream out;
    out << "of shape " << tensor.sizes() << " needs " << (last + 1) << " values, its record "
        << "holds " << available / item_size << " (truncated or corrupt)";
    return out.str();
  }
  return "";
}

// The length of an opcode's argument in a pickle (protocols 0-5), or -1 for an opcode whose
// argument runs to a newline (text protocols), -2 for one whose argument is a length-prefixed
// string (`*prefix_bytes` set), -3 for an unknown opcode.
int pickle_argument_bytes(char opcode, int* prefix_bytes) {
  switch (opcode) {  // char literals: '\x80' and the like are negative where char is signed
    case '\x80': case 'K': case 'q': case 'h': case '\x82': return 1;  // PROTO BININT1 BINPUT BINGET EXT1
    case 'M': case '\x83': return 2;                                     // BININT2 EXT2
    case 'J': case 'r': case 'j': case '\x84': return 4;  // BININT LONG_BINPUT LONG_BINGET EXT4
    case '\x95': case 'G': return 8;                      // FRAME BINFLOAT
    case '\x8a': case 'U': case '\x8c': case 'C': *prefix_bytes = 1; return -2;
    case '\x8b': case 'T': case 'X': case 'B': *prefix_bytes = 4; return -2;
    case '\x8d': case '\x8e': case '\x96': *prefix_bytes = 8; return -2;
    case 'I': case 'L': case 'F': case 'S': case 'V': case 'p': case 'g': case 'P':
    case 'c': case 'i': return -1;
    case '(': case '.': case '0': case '1': case '2': case 'N': case ')': case ']': case '}':
    case 'a': case 'e': case 's': case 'u': case 'b': case 'R': case 't': case 'l': case 'd':
    case 'o': case '\x81': case '\x85': case '\x86': case '\x87': case '\x88': case '\x89':
    case 'Q': case '\x8f': case '\x90': case '\x91': case '\x92': case '\x93': case '\x94':
    case '\x97': case '\x98': return 0;
    default: return -3;
  }
}

// Walks a pickle's opcodes and requires every argument, and every length-prefixed string or
// byte string, to lie within the record, and memo indices to follow each other: libtorch's
// Unpickler reserves a declared length or memo size before reading on, so four bytes could
// make it ask for gigabytes.
void check_pickle_framing(const char* bytes, size_t size, const std::string& what) {
  size_t position = 0;
  uint64_t memo_entries = 0;
  const auto fail = [&](const std::string& problem) {
    throw ArchiveError(what + " is corrupt: " + problem + " at byte " + std::to_string(position));
  };
  while (position < size) {
    const char opcode = bytes[position];
    if (opcode == '.') return;  // STOP
    int prefix_bytes = 0;
    const int argument = pickle_argument_bytes(opcode, &prefix_bytes);
    const size_t remaining = size - position - 1;
    if (argument == -3) fail("an unknown pickle opcode");
    if (argument == -1) {
      const int lines = (opcode == 'c' || opcode == 'i') ? 2 : 1;
      size_t end = position + 1;
      for (int line = 0; line < lines; ++line) {
        const void* newline = std::memchr(bytes + end, '\n', size - end);
        if (!newline) fail("an unterminated text argument");
        end = static_cast<size_t>(static_cast<const char*>(newline) - bytes) + 1;
      }
      position = end;
      continue;
    }
    if (argument >= 0) {
      if (static_cast<size_t>(argument) > remaining) fail("an argument past the end");
      // BINPUT and LONG_BINPUT: libtorch's Unpickler sizes its memo table by the index given,
      // and a pickler numbers its memo entries from 0 (a fuzzed index asked for 25 GB).
      if (opcode == 'q' || opcode == 'r') {
        const uint64_t index = little_endian(bytes + position + 1, static_cast<size_t>(argument));
        if (index > memo_entries) {
          fail("a memo index of " + std::to_string(index) + " after " +
               std::to_string(memo_entries) + " entries");
        }
        memo_entries += index == memo_entries;
      }
      memo_entries += opcode == '\x94';  // MEMOIZE: the next index
      position += 1 + static_cast<size_t>(argument);
      continue;
    }
    if (static_cast<size_t>(prefix_bytes) > remaining) fail("a length past the end");
    const uint64_t length = little_endian(bytes + position + 1, static_cast<size_t>(prefix_bytes));
    if (length > remaining - static_cast<size_t>(prefix_bytes)) {
      fail("a string of " + std::to_string(length) + " bytes where " +
           std::to_string(remaining - prefix_bytes) + " remain");
    }
    position += 1 + static_cast<size_t>(prefix_bytes) + length;
  }
  fail("no STOP opcode");
}

// What a weights archive holds for the native models.
struct ArchiveContents {
  TensorMap tensors;        // every tensor attribute of the module tree, by dotted name
  std::string config_text;  // extra/dlwpt_model.cfg, empty when absent
};

// Reads a TorchScript archive's module tree from its data.pkl without torch::jit::load, whose
// TorchScript compiler runs the archive's code/ (a fuzzed source crashed it) and which sizes
// each storage as the pickle declares and fills it from the record of that name without
// comparing the two (a short record was read past its end). Here every class is an empty
// stand-in, no code is compiled, and every tensor is checked against the record that holds
// its values.
class ArchiveTreeReader {
 public:
  explicit ArchiveTreeReader(const std::string& path)
      : path_(path), reader_(with_checked_records(path)) {}

  ArchiveContents read() {
    // Not a structured binding: lambdas may capture those only from C++20 on.
    auto record = reader_.getRecord("data.pkl");
    const char* bytes = static_cast<const char*>(std::get<0>(record).get());
    const size_t size = std::get<1>(record);
    check_pickle_framing(bytes, size, "weights archive '" + path_ + "': its data.pkl");
    check_other_pickles();
    size_t position = 0;
    const auto read = [&](char* buffer, size_t wanted) {
      const size_t count = std::min(wanted, size - position);
      std::memcpy(buffer, bytes + position, count);
      position += count;
      return count;
    };
    torch::jit::Unpickler unpickler(
        read, [this](const c10::QualifiedName& name) { return resolve(name); },
        [this](const at::StrongTypePtr& type, const c10::IValue& state) {
          return load_object(type, state);
        },
        [this](const std::string& key) { return read_record(key); }, torch::kCPU);
    walk(unpickler.parse_ivalue(), "", 0, /*named=*/true);
    ArchiveContents contents;
    contents.tensors = std::move(tensors_);
    const std::string config = std::string("extra/") + ModelConfig::kArchiveEntry;
    if (reader_.hasRecord(config)) {
      auto [data, length] = reader_.getRecord(config);
      contents.config_text.assign(static_cast<const char*>(data.get()), length);
    }
    return contents;
  }

 private:
  static constexpr int kMaxDepth = 256;  // far deeper than any model's module tree

  // libtorch's reader allocates what a record claims before reading it (its version record
  // already in the constructor): the claims are checked first.
  static const std::string& with_checked_records(const std::string& path) {
    check_zip_records(path);
    return path;
  }

  // Not read here, but by torch::jit::load when the archive also runs as TorchScript (the
  // zebraify jit engine): TorchScript constants and the debug information.
  void check_other_pickles() {
    for (const auto& name : reader_.getAllRecords()) {
      const bool pickle = name.size() > 3 && name.compare(name.size() - 3, 3, "pkl") == 0;  // .pkl, .debug_pkl
      if (!pickle || name == "data.pkl") continue;
      auto record = reader_.getRecord(name);
      check_pickle_framing(static_cast<const char*>(std::get<0>(record).get()), std::get<1>(record),
                           "weights archive '" + path_ + "': its " + name);
    }
  }

  // Every class is an empty stand-in: only the objects' states matter here.
  c10::StrongTypePtr resolve(const c10::QualifiedName& name) {
    auto& type = classes_[name.qualifiedName()];
    if (!type) type = c10::ClassType::create(name, unit_);
    return c10::StrongTypePtr(unit_, type);
  }

  c10::intrusive_ptr<c10::ivalue::Object> load_object(const at::StrongTypePtr& type,
                                                      const c10::IValue& state) {
    auto object = c10::ivalue::Object::create(type, 0);
    states_[object.get()] = state;
    return object;
  }

  at::DataPtr read_record(const std::string& key) {
    auto [data, size] = reader_.getRecord("data/" + key);
    record_sizes_[data.get()] = static_cast<int64_t>(size);
    return std::move(data);
  }

  // A module's state is the dict of its attributes: submodules (objects), parameters and
  // buffers (tensors), flags. Tensors reached through attribute names are the archive's
  // tensors; those inside lists and tuples are only checked.
  void walk(const c10::IValue& value, const std::string& name, int depth, bool named) {
    if (depth > kMaxDepth) {
      throw ArchiveError("weights archive '" + path_ + "' nests its objects too deeply");
    }
    if (value.isTensor()) {
      check_tensor(value.toTensor(), name);
      if (named && !name.empty() && value.toTensor().defined()) tensors_.emplace(name, value.toTensor());
    } else if (value.isObject()) {
      const auto state = states_.find(value.toObject().get());
      if (state != states_.end()) walk(state->second, name, depth + 1, named);
    } else if (value.isGenericDict()) {
      for (const auto& entry : value.toGenericDict()) {
        const std::string key = entry.key().isString() ? entry.key().toStringRef() : "?";
        walk(entry.value(), name.empty() ? key : name + "." + key, depth + 1, named);
      }
    } else if (value.isTuple()) {
      for (const auto& element : value.toTupleRef().elements()) walk(element, name, depth + 1, false);
    } else if (value.isList()) {
      for (const auto& element : value.toListRef()) walk(element, name, depth + 1, false);
    }
  }

  void check_tensor(const torch::Tensor& tensor, const std::string& name) {
    if (!tensor.defined() || tensor.layout() != torch::kStrided) return;
    const auto record = record_sizes_.find(tensor.storage().data());
    const int64_t available = record == record_sizes_.end() ? 0 : record->second;
    const std::string defect = tensor_defect(tensor, available);
    if (!defect.empty()) {
      throw ArchiveError("weights archive '" + path_ + "': tensor '" + name + "' " + defect);
    }
  }

  std::string path_;
  caffe2::serialize::PyTorchStreamReader reader_;
  std::shared_ptr<torch::jit::CompilationUnit> unit_ =
      std::make_shared<torch::jit::CompilationUnit>();
  std::map<std::string, c10::ClassTypePtr> classes_;
  std::map<const c10::ivalue::Object*, c10::IValue> states_;
  std::map<const void*, int64_t> record_sizes_;  // by the address of the record's bytes
  TensorMap tensors_;
};

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

  void save(std::ostream& out, const torch::jit::ExtraFilesMap& extra_files) const {
    root_.save(out, extra_files);
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

// Whole or not at all, flushed to the disk (weights/atomic_file.h).
void save_atomically(const ArchiveBuilder& builder, const std::string& path,
                     const torch::jit::ExtraFilesMap& extra_files) {
  try {
    write_serialized_atomically(path, [&](std::ostream& out) { builder.save(out, extra_files); });
  } catch (const std::exception& error) {
    // write_atomically's message names the path already; keep only its cause.
    std::string cause = first_line(message_of(error));
    const std::string named = "cannot write '" + path + "': ";
    if (cause.compare(0, named.size(), named) == 0) cause.erase(0, named.size());
    throw ArchiveError("cannot write weights archive '" + path + "': " + cause);
  }
}

}  // namespace

ModelConfig ModelConfig::parse(const std::string& text) {
  ModelConfig config;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    // A configuration edited on Windows ends its lines with CR LF; the CR is no part of a value.
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
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
  const auto number = parse_integer(value);
  if (!number) {
    throw ArchiveError("option '" + key + "' of the " + model + " configuration is '" + value +
                       "', not an integer");
  }
  return *number;
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

namespace {

Archive read_checked_archive(const std::string& path) {
  check_readable_file(path);
  // A malformed zip or pickle (ZipFormatError, c10::Error): what the file seems to be instead.
  const auto unusable = [&path](const std::string& problem) {
    return ArchiveError("cannot read weights archive '" + path + "': " +
                        describe_unreadable_file(path) + " (" + problem + ")");
  };
  ArchiveContents contents;
  try {
    contents = ArchiveTreeReader(path).read();
  } catch (const ZipFormatError& error) {
    throw unusable(error.problem());
  } catch (const ArchiveError&) {
    throw;
  } catch (const std::exception& error) {
    throw unusable(first_line(message_of(error)));
  }
  Archive archive;
  archive.tensors = std::move(contents.tensors);
  if (archive.tensors.empty()) {
    throw ArchiveError("weights archive '" + path + "' holds no parameters or buffers");
  }
  if (!contents.config_text.empty()) {
    try {
      archive.model_config = ModelConfig::parse(contents.config_text);
    } catch (const ArchiveError& error) {
      throw ArchiveError("weights archive '" + path + "': " + error.what());
    }
  }
  return archive;
}

}  // namespace

Archive read_archive(const std::string& path) {
  try {
    return read_checked_archive(path);
  } catch (const ArchiveError&) {
    throw;
  } catch (const std::exception& error) {  // anything else a hostile file provokes
    throw ArchiveError("cannot read weights archive '" + path + "': " +
                       first_line(message_of(error)));
  }
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

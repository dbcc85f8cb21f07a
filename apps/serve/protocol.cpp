#include "apps/serve/protocol.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

#include <strings.h>

#include <nlohmann/json.hpp>

#include "apps/serve/json_text.h"

namespace dlwpt::serve {

using nlohmann::json;

namespace {

// Tensors travel as the host's float32 bytes; the protocol's byte order is little endian.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "raw tensor data is little endian");

// No model here takes more than 5 dimensions; nested JSON data is as deep as the rank.
constexpr size_t kMaxRank = 8;
constexpr int kMaxJsonDepth = 16;
// Bounds a shape's product before it is compared with the data: no overflow, and far above
// anything a body within the size limit can hold.
constexpr int64_t kMaxElements = int64_t{1} << 40;

[[noreturn]] void bad_request(const std::string& message) { throw RequestError(400, message); }

// nlohmann's parser keeps its own stack, but walking what it built recurses: refuse deep
// nesting first, counting brackets outside strings.
void check_json_depth(std::string_view text, const char* what) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) {
        bad_request(std::string(what) + " nests deeper than " + std::to_string(kMaxJsonDepth) +
                    " levels");
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

json parse_json(std::string_view text, const char* what) {
  check_json_depth(text, what);
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& error) {
    bad_request(std::string(what) + " is not valid JSON (" + error.what() + ")");
  }
}

const json* find_member(const json& object, const char* key) {
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

std::string string_member(const json& object, const char* key, const std::string& where) {
  const json* value = find_member(object, key);
  if (!value || !value->is_string()) bad_request(where + " needs a string \"" + key + "\"");
  return value->get<std::string>();
}

bool bool_parameter(const json& object, const char* key) {
  const json* parameters = find_member(object, "parameters");
  if (!parameters || !parameters->is_object()) return false;
  const json* value = find_member(*parameters, key);
  return value && value->is_boolean() && value->get<bool>();
}

std::vector<int64_t> parse_shape(const json& value, const std::string& where) {
  if (!value.is_array() || value.empty() || value.size() > kMaxRank) {
    bad_request(where + " needs a \"shape\": a list of 1 to " + std::to_string(kMaxRank) +
                " sizes");
  }
  std::vector<int64_t> shape;
  for (const json& size : value) {
    if (!size.is_number_integer() || size.get<int64_t>() < 0 ||
        size.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      bad_request(where + " has a shape size that is not an integer in [0, 2^31)");
    }
    shape.push_back(size.get<int64_t>());
  }
  int64_t elements = 1;
  for (const int64_t size : shape) {
    if (size == 0) return shape;  // empty: refused by check_tensor, with its shape named
    if (elements > kMaxElements / size) bad_request(where + " has a shape of more than 2^40 elements");
    elements *= size;
  }
  return shape;
}

int64_t element_count(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (const int64_t size : shape) count *= size;  // bounded by parse_shape
  return count;
}

// Visits the numbers of JSON data, flat or nested (as deep as the shape), in row-major order.
template <typename Visit>
void for_each_json_number(const json& data, const std::string& where, Visit&& visit) {
  std::vector<const json*> stack{&data};
  while (!stack.empty()) {
    const json* value = stack.back();
    stack.pop_back();
    if (value->is_array()) {
      for (auto it = value->rbegin(); it != value->rend(); ++it) stack.push_back(&*it);
    } else if (value->is_number()) {
      visit(*value);
    } else {
      bad_request(where + " has \"data\" that is not all numbers");
    }
  }
}

// The JSON numbers as a tensor of `shape`; their count is checked before its memory is taken.
torch::Tensor tensor_from_json(const json& data, const std::vector<int64_t>& shape,
                               const std::string& where) {
  int64_t given = 0;
  for_each_json_number(data, where, [&](const json&) { ++given; });
  if (given != element_count(shape)) {
    bad_request(where + " has " + std::to_string(given) + " values in \"data\", its shape holds " +
                std::to_string(element_count(shape)));
  }
  torch::Tensor tensor = torch::empty(shape, torch::kFloat32);
  float* out = tensor.data_ptr<float>();
  for_each_json_number(data, where, [&](const json& value) { *out++ = value.get<float>(); });
  return tensor;
}

// The bytes of the binary section that belong to the next binary input.
std::string_view take_binary(std::string_view& rest, const json& input, int64_t count,
                             const std::string& where) {
  const json& size = (*find_member(input, "parameters"))["binary_data_size"];
  if (!size.is_number_unsigned()) bad_request(where + " has a binary_data_size that is no size");
  const uint64_t bytes = size.get<uint64_t>();
  if (bytes != static_cast<uint64_t>(count) * sizeof(float)) {
    bad_request(where + " has binary_data_size " + std::to_string(bytes) + ", its FP32 shape needs " +
                std::to_string(count * sizeof(float)) + " bytes");
  }
  if (bytes > rest.size()) {
    bad_request(where + " has binary_data_size " + std::to_string(bytes) + " but only " +
                std::to_string(rest.size()) + " bytes of binary data remain (truncated body?)");
  }
  const std::string_view data = rest.substr(0, bytes);
  rest.remove_prefix(bytes);
  return data;
}

const TensorSpec& find_spec(const std::vector<TensorSpec>& specs, const std::string& name,
                            const char* kind) {
  for (const auto& spec : specs) {
    if (spec.name == name) return spec;
  }
  std::string known;
  for (const auto& spec : specs) known += (known.empty() ? "" : ", ") + spec.name;
  bad_request(std::string("the model has no ") + kind + " \"" + name + "\" (it has: " + known + ")");
}

torch::Tensor parse_input(const json& input, std::string_view& binary, const TensorSpec& spec,
                          const std::string& where) {
  const json* shape_value = find_member(input, "shape");
  if (!shape_value) bad_request(where + " needs a \"shape\"");
  const std::vector<int64_t> shape = parse_shape(*shape_value, where);
  const std::string datatype = string_member(input, "datatype", where);
  if (datatype != spec.datatype) {
    bad_request(where + " has datatype " + datatype + ", the model takes " + spec.datatype);
  }
  const int64_t count = element_count(shape);
  const json* parameters = find_member(input, "parameters");
  const bool is_binary = parameters && parameters->is_object() &&
                         parameters->contains("binary_data_size");
  const json* data = find_member(input, "data");
  if (is_binary == (data != nullptr)) {
    bad_request(where + " needs either \"data\" or a binary_data_size parameter");
  }
  // Sizes agree before the tensor's memory is taken.
  if (is_binary) {
    const std::string_view bytes = take_binary(binary, input, count, where);
    torch::Tensor tensor = torch::empty(shape, torch::kFloat32);
    if (!bytes.empty()) std::memcpy(tensor.data_ptr<float>(), bytes.data(), bytes.size());
    return tensor;
  }
  if (!data->is_array()) bad_request(where + " has \"data\" that is not a list");
  return tensor_from_json(*data, shape, where);
}

json tensor_shape_json(const torch::Tensor& tensor) {
  json shape = json::array();
  for (const int64_t size : tensor.sizes()) shape.push_back(size);
  return shape;
}

}  // namespace

// One pass without temporaries, on the HTTP thread that parsed the request:
// torch::isfinite(...).all() makes several passes and two boolean tensors, about 4 ms of a
// core for a 7 MiB U-Net slice, taken from the model running beside it.
bool all_finite(const torch::Tensor& tensor) {
  if (tensor.scalar_type() != torch::kFloat32 || !tensor.is_contiguous()) {
    return torch::isfinite(tensor).all().item<bool>();
  }
  const float* values = tensor.data_ptr<float>();
  const int64_t count = tensor.numel();
  bool finite = true;  // NaN compares false; the loop has no early exit so that it vectorizes
  for (int64_t i = 0; i < count; ++i) {
    finite &= std::fabs(values[i]) <= std::numeric_limits<float>::max();
  }
  return finite;
}

std::string shape_text(c10::IntArrayRef shape) {
  std::ostringstream text;
  text << "[";
  for (size_t i = 0; i < shape.size(); ++i) text << (i ? ", " : "") << shape[i];
  text << "]";
  return text.str();
}

void check_tensor(const TensorSpec& spec, const torch::Tensor& tensor) {
  const auto fail = [&](const std::string& problem) {
    bad_request("input \"" + spec.name + "\" of shape " + shape_text(tensor.sizes()) + " " + problem +
                " (the model takes " + shape_text(spec.shape) + ", -1 any size)");
  };
  if (tensor.dim() != static_cast<int64_t>(spec.shape.size())) fail("has the wrong rank");
  for (size_t i = 0; i < spec.shape.size(); ++i) {
    if (spec.shape[i] >= 0 && tensor.size(static_cast<int64_t>(i)) != spec.shape[i]) {
      fail("has the wrong size in dimension " + std::to_string(i));
    }
  }
  if (tensor.numel() == 0) fail("is empty");
  if (!all_finite(tensor)) {
    bad_request("input \"" + spec.name + "\" holds NaN or infinite values");
  }
}

InferRequest parse_infer_request(std::string_view body, std::optional<size_t> header_length,
                                 const std::vector<TensorSpec>& inputs,
                                 const std::vector<TensorSpec>& outputs) {
  if (header_length && *header_length > body.size()) {
    bad_request("Inference-Header-Content-Length is " + std::to_string(*header_length) +
                " but the body has only " + std::to_string(body.size()) + " bytes");
  }
  const size_t json_bytes = header_length ? *header_length : body.size();
  const json request = parse_json(body.substr(0, json_bytes), "the inference request");
  if (!request.is_object()) bad_request("the inference request is not a JSON object");
  std::string_view binary = body.substr(json_bytes);

  InferRequest parsed;
  if (const json* id = find_member(request, "id"); id && id->is_string()) parsed.id = id->get<std::string>();
  parsed.binary_by_default = bool_parameter(request, "binary_data_output");
  const json* input_list = find_member(request, "inputs");
  if (!input_list || !input_list->is_array()) bad_request("the inference request needs \"inputs\"");
  for (const json& input : *input_list) {
    if (!input.is_object()) bad_request("every input must be a JSON object");
    const std::string name = string_member(input, "name", "an input");
    const TensorSpec& spec = find_spec(inputs, name, "input");
    const std::string where = "input \"" + name + "\"";
    if (parsed.inputs.count(name)) bad_request(where + " is given twice");
    torch::Tensor tensor = parse_input(input, binary, spec, where);
    check_tensor(spec, tensor);
    parsed.inputs.emplace(name, std::move(tensor));
  }
  for (const auto& spec : inputs) {
    if (!parsed.inputs.count(spec.name)) bad_request("input \"" + spec.name + "\" is missing");
  }
  if (!binary.empty()) {
    bad_request(std::to_string(binary.size()) + " bytes of binary data belong to no input");
  }
  if (const json* requested = find_member(request, "outputs")) {
    if (!requested->is_array()) bad_request("\"outputs\" must be a list");
    for (const json& output : *requested) {
      if (!output.is_object()) bad_request("every requested output must be a JSON object");
      parsed.outputs.push_back(find_spec(outputs, string_member(output, "name", "a requested output"),
                                         "output").name);
      parsed.binary_outputs[parsed.outputs.back()] = bool_parameter(output, "binary_data");
    }
  }
  return parsed;
}

EncodedResponse encode_infer_response(const std::string& model, const InferRequest& request,
                                      const TensorMap& outputs,
                                      const std::vector<TensorSpec>& specs) {
  std::vector<std::string> names = request.outputs;
  if (names.empty()) {
    for (const auto& spec : specs) names.push_back(spec.name);
  }
  json response = {{"model_name", model}, {"model_version", "1"}, {"outputs", json::array()}};
  if (!request.id.empty()) response["id"] = request.id;
  std::string binary;
  for (const auto& name : names) {
    const TensorSpec& spec = find_spec(specs, name, "output");
    const auto found = outputs.find(name);
    if (found == outputs.end()) throw std::logic_error("the model gave no output " + name);
    const torch::Tensor tensor = found->second.to(torch::kCPU, torch::kFloat32).contiguous();
    json output = {{"name", name}, {"datatype", spec.datatype}, {"shape", tensor_shape_json(tensor)}};
    const auto asked = request.binary_outputs.find(name);
    const bool as_binary = asked != request.binary_outputs.end() && asked->second
                               ? true
                               : request.binary_by_default;
    const float* values = tensor.data_ptr<float>();
    if (as_binary) {
      const size_t bytes = static_cast<size_t>(tensor.numel()) * sizeof(float);
      binary.append(reinterpret_cast<const char*>(values), bytes);
      output["parameters"] = {{"binary_data_size", bytes}};
    } else {
      output["data"] = std::vector<float>(values, values + tensor.numel());
    }
    response["outputs"].push_back(std::move(output));
  }
  EncodedResponse encoded;
  encoded.body = json_text(response);
  if (binary.empty()) {
    encoded.content_type = "application/json";
  } else {
    encoded.header_length = encoded.body.size();
    encoded.body += binary;
    encoded.content_type = "application/octet-stream";
  }
  return encoded;
}

torch::Tensor parse_book_chunk(std::string_view meta, std::string_view blob, const TensorSpec& spec) {
  const json parsed = parse_json(meta, "the \"meta\" field");
  if (!parsed.is_object() || !parsed.contains("shape")) {
    bad_request("the \"meta\" field must be JSON with a \"shape\", as {\"shape\": [1, 32, 48, 48]}");
  }
  std::vector<int64_t> shape = parse_shape(parsed["shape"], "the \"meta\" field");
  if (shape.size() + 1 == spec.shape.size()) shape.insert(shape.begin(), 1);  // the book's form
  const int64_t count = element_count(shape);
  if (static_cast<uint64_t>(blob.size()) != static_cast<uint64_t>(count) * sizeof(float)) {
    bad_request("the \"blob\" field has " + std::to_string(blob.size()) + " bytes; shape " +
                shape_text(shape) + " of float32 needs " + std::to_string(count * sizeof(float)));
  }
  torch::Tensor chunk = torch::empty(shape, torch::kFloat32);
  if (count > 0) std::memcpy(chunk.data_ptr<float>(), blob.data(), blob.size());
  check_tensor(spec, chunk);
  if (chunk.size(0) != 1) bad_request("/predict takes one chunk; send batches to /v2/models/.../infer");
  return chunk;
}

namespace {

// The value of `name` in a header's parameters ("...; name=value" or name="value", where a
// quoted value may hold ';' and '\\'-escaped characters), if any.
std::optional<std::string> header_parameter(std::string_view header, std::string_view name) {
  size_t at = header.find(';');
  while (at != std::string_view::npos && at < header.size()) {
    ++at;
    while (at < header.size() && (header[at] == ' ' || header[at] == '\t')) ++at;
    const size_t equals = std::min(header.find_first_of("=;", at), header.size());
    const std::string_view key = header.substr(at, equals - at);
    std::string value;
    at = equals;
    if (equals < header.size() && header[equals] == '=') {
      at = equals + 1;
      if (at < header.size() && header[at] == '"') {
        for (++at; at < header.size() && header[at] != '"'; ++at) {
          if (header[at] == '\\' && at + 1 < header.size()) ++at;
          value += header[at];
        }
        if (at >= header.size()) return std::nullopt;  // no closing quote
        ++at;
      } else {
        const size_t end = header.find_first_of("; \t", at);
        value = std::string(header.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at));
        at = end;
      }
      at = at == std::string_view::npos ? at : header.find(';', at);
    }
    if (key.size() == name.size() && strncasecmp(key.data(), name.data(), name.size()) == 0) return value;
  }
  return std::nullopt;
}

[[noreturn]] void bad_multipart(const std::string& problem) {
  bad_request("malformed multipart/form-data body: " + problem);
}

}  // namespace

std::map<std::string, std::string_view> parse_multipart_form_data(std::string_view content_type,
                                                                  std::string_view body) {
  constexpr std::string_view kType = "multipart/form-data";
  if (content_type.size() < kType.size() || strncasecmp(content_type.data(), kType.data(), kType.size()) != 0) {
    bad_request("the body is not multipart/form-data");
  }
  const auto boundary = header_parameter(content_type, "boundary");
  if (!boundary || boundary->empty() || boundary->size() > 70) {
    bad_request("multipart/form-data needs a boundary of 1 to 70 characters in its Content-Type");
  }
  const std::string delimiter = "--" + *boundary;
  const std::string next_part = "\r\n" + delimiter;
  // A preamble before the first delimiter is allowed, and ignored.
  size_t at = body.rfind(delimiter, 0) == 0 ? 0 : body.find(next_part);
  if (at == std::string_view::npos) bad_multipart("no boundary");
  at += body.compare(at, 2, "\r\n") == 0 ? next_part.size() : delimiter.size();
  std::map<std::string, std::string_view> fields;
  for (;;) {
    if (body.compare(at, 2, "--") == 0) return fields;  // the closing delimiter
    if (body.compare(at, 2, "\r\n") != 0) bad_multipart("a boundary is not followed by a line end");
    const size_t headers_end = body.find("\r\n\r\n", at);
    if (headers_end == std::string_view::npos) bad_multipart("a part's headers do not end");
    const std::string_view headers = body.substr(at, headers_end + 2 - at);
    std::optional<std::string> name;
    for (size_t line = 2; line < headers.size();) {
      const size_t end = headers.find("\r\n", line);
      const std::string_view text = headers.substr(line, end - line);
      constexpr std::string_view kDisposition = "content-disposition:";
      if (text.size() > kDisposition.size() &&
          strncasecmp(text.data(), kDisposition.data(), kDisposition.size()) == 0) {
        name = header_parameter(text, "name");
      }
      line = end + 2;
    }
    if (!name) bad_multipart("a part has no Content-Disposition name");
    const size_t data = headers_end + 4;
    const size_t end = body.find(next_part, data);
    if (end == std::string_view::npos) bad_multipart("the body ends before its closing boundary");
    if (!fields.emplace(*name, body.substr(data, end - data)).second) {
      bad_multipart("the field \"" + std::string(*name) + "\" is given twice");
    }
    at = end + next_part.size();
  }
}

std::string error_json(const std::string& message) { return json_text(json{{"error", message}}); }

}  // namespace dlwpt::serve

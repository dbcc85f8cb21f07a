#pragma once

// The wire formats of dlwpt-serve, as pure functions from request bytes to tensors and from
// tensors to response bytes, so that they are tested and fuzzed without sockets:
// - the KServe v2 / Triton inference protocol over HTTP, with JSON tensors and with Triton's
//   binary-data extension (a JSON header of `Inference-Header-Content-Length` bytes, then the
//   raw tensors in order);
// - the book's `/predict` (chapter 15): a multipart `meta` JSON {"shape": [...]} and a `blob`
//   of raw float32 values.
// Everything a client sends is untrusted: sizes are checked against each other before any
// tensor memory is taken, and every problem is a RequestError with the HTTP status to answer.

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <torch/types.h>

namespace dlwpt::serve {

/// A request the server refuses; `status` is the HTTP status of the answer (400 malformed,
/// 404 unknown model or path, 413 too large, ...), `what()` the one-line reason.
class RequestError : public std::runtime_error {
 public:
  RequestError(int status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

/// Tensors by name: a model's inputs or outputs.
using TensorMap = std::map<std::string, torch::Tensor>;

/// One input or output of a model as the v2 metadata describes it; -1 is a free dimension
/// (the batch, or an image side).
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  std::string datatype = "FP32";
};

/// A v2 inference request, parsed and checked against the model's inputs.
struct InferRequest {
  std::string id;  ///< echoed in the response, as Triton does
  TensorMap inputs;
  /// Outputs asked for by name (empty: all), and which of them come back as binary data.
  std::vector<std::string> outputs;
  std::map<std::string, bool> binary_outputs;
  bool binary_by_default = false;  ///< request parameter `binary_data_output`
};

/// Parses a v2 infer body. `header_length` is the `Inference-Header-Content-Length` header:
/// the body's first bytes are then the JSON, followed by every input whose parameters give a
/// `binary_data_size`, in order. Each input must be one of `inputs` (all of them given), of
/// datatype FP32, of a shape that fits its spec, with exactly as many values as the shape
/// holds, all finite; requested outputs must be among `outputs`.
InferRequest parse_infer_request(std::string_view body, std::optional<size_t> header_length,
                                 const std::vector<TensorSpec>& inputs,
                                 const std::vector<TensorSpec>& outputs);

/// A response body and what the HTTP headers must say about it.
struct EncodedResponse {
  std::string body;
  std::string content_type;
  std::optional<size_t> header_length;  ///< Inference-Header-Content-Length, when binary
};

/// The v2 infer response for `outputs` (float32 CPU tensors), the requested ones in the order
/// of `specs`, each as JSON numbers or, where the request asked for it, binary data.
EncodedResponse encode_infer_response(const std::string& model, const InferRequest& request,
                                      const TensorMap& outputs,
                                      const std::vector<TensorSpec>& specs);

/// The book's `/predict` chunk: `meta` is JSON with "shape" (the chunk's, without a batch
/// dimension, as the book's client sends it, or with a batch dimension of 1), `blob` its
/// float32 values in little-endian order. Returns a batch of one, checked against `spec`.
torch::Tensor parse_book_chunk(std::string_view meta, std::string_view blob, const TensorSpec& spec);

/// The fields of a multipart/form-data body (RFC 7578) by name, as the book's client (Python
/// requests' `files=`) sends them; `content_type` is the request's header, with the boundary.
/// A body that is not well-formed, names a field twice or ends before its closing boundary is
/// a RequestError 400. The values are views into `body`.
std::map<std::string, std::string_view> parse_multipart_form_data(std::string_view content_type,
                                                                  std::string_view body);

/// Checks a tensor against a spec (rank, fixed sizes, at least one element, finite values).
void check_tensor(const TensorSpec& spec, const torch::Tensor& tensor);

/// `{"error": "<message>"}`, the v2 protocol's error body.
std::string error_json(const std::string& message);

/// Whether every value is finite (no NaN, no infinity): inputs before they run, and outputs,
/// which JSON cannot carry otherwise and which huge finite inputs can overflow to.
bool all_finite(const torch::Tensor& tensor);

/// The shape as JSON-like text, "[1, 32, 48, 48]", for messages.
std::string shape_text(c10::IntArrayRef shape);

}  // namespace dlwpt::serve

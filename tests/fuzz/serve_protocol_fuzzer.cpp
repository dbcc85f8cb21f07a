// dlwpt-serve's wire formats from untrusted bytes (apps/serve/protocol.h): v2 inference
// requests as JSON, with Triton's binary extension, the book's /predict fields, and the
// multipart/form-data bodies that carry them. The first
// byte chooses the form; every refusal must be a RequestError, never a crash, an abort or an
// allocation the bytes do not pay for.

#include <cstdint>
#include <string>
#include <string_view>

#include "apps/serve/protocol.h"

namespace {

const std::vector<dlwpt::serve::TensorSpec> kInputs = {{"input", {-1, 1, 4, 6, 6}}};
const std::vector<dlwpt::serve::TensorSpec> kOutputs = {{"logits", {-1, 2}}, {"probabilities", {-1, 2}}};

void parse(std::string_view bytes, uint8_t form) {
  switch (form % 4) {
    case 0:  // JSON tensors
      dlwpt::serve::parse_infer_request(bytes, std::nullopt, kInputs, kOutputs);
      break;
    case 1: {  // binary extension: the next two bytes give the JSON header's length
      if (bytes.size() < 2) return;
      const size_t header = (static_cast<uint8_t>(bytes[0]) << 8) | static_cast<uint8_t>(bytes[1]);
      const auto request = dlwpt::serve::parse_infer_request(bytes.substr(2), header, kInputs, kOutputs);
      dlwpt::serve::encode_infer_response("fuzz", request,
                                          {{"logits", request.inputs.at("input").flatten().narrow(0, 0, 2).view({1, 2})},
                                           {"probabilities", torch::zeros({1, 2})}},
                                          kOutputs);
      break;
    }
    case 2: {  // the book's fields: meta, a zero byte, blob
      const size_t split = bytes.find('\0');
      if (split == std::string_view::npos) return;
      dlwpt::serve::parse_book_chunk(bytes.substr(0, split), bytes.substr(split + 1), kInputs.front());
      break;
    }
    case 3: {  // multipart/form-data: the Content-Type's parameters, a line end, the body
      const size_t split = bytes.find('\n');
      if (split == std::string_view::npos) return;
      const std::string type = "multipart/form-data; " + std::string(bytes.substr(0, split));
      const auto fields = dlwpt::serve::parse_multipart_form_data(type, bytes.substr(split + 1));
      if (fields.count("meta") && fields.count("blob")) {
        dlwpt::serve::parse_book_chunk(fields.at("meta"), fields.at("blob"), kInputs.front());
      }
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  try {
    parse(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1), data[0]);
  } catch (const dlwpt::serve::RequestError&) {
  }
  return 0;
}

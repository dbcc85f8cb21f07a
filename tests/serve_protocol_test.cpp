// dlwpt-serve's wire formats (apps/serve/protocol.h) without sockets: v2 requests with JSON
// tensors and binary data, the responses, the book's /predict chunk, and the refusals of
// malformed or hostile bodies (each a RequestError with its status, before any large
// allocation).

#include <cstring>
#include <limits>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "apps/serve/protocol.h"

namespace dlwpt::testing {
namespace {

using nlohmann::json;
using serve::RequestError;
using serve::TensorSpec;
using ::testing::HasSubstr;

const std::vector<TensorSpec> kInputs = {{"input", {-1, 1, 2, 3}}};
const std::vector<TensorSpec> kOutputs = {{"logits", {-1, 2}}, {"probabilities", {-1, 2}}};

std::string bytes_of(const torch::Tensor& tensor) {
  const auto contiguous = tensor.contiguous();
  return std::string(static_cast<const char*>(contiguous.data_ptr()), contiguous.nbytes());
}

// The status and message a call is refused with; fails the test if it is not refused.
std::pair<int, std::string> refusal(const std::function<void()>& call) {
  try {
    call();
  } catch (const RequestError& error) {
    return {error.status(), error.what()};
  }
  ADD_FAILURE() << "not refused";
  return {0, ""};
}

std::pair<int, std::string> refusal_of_body(const std::string& body,
                                            std::optional<size_t> header_length = std::nullopt) {
  return refusal([&] { serve::parse_infer_request(body, header_length, kInputs, kOutputs); });
}

json input_json(const json& shape, const json& data) {
  return {{"inputs", {{{"name", "input"}, {"datatype", "FP32"}, {"shape", shape}, {"data", data}}}}};
}

TEST(ServeProtocol, JsonTensorsFlatOrNestedGiveTheSameInput) {
  const auto flat = serve::parse_infer_request(
      input_json({1, 1, 2, 3}, {1, 2, 3, 4, 5, 6.5}).dump(), std::nullopt, kInputs, kOutputs);
  const auto nested = serve::parse_infer_request(
      input_json({1, 1, 2, 3}, {{{{1, 2, 3}, {4, 5, 6.5}}}}).dump(), std::nullopt, kInputs, kOutputs);
  const auto expected = torch::tensor({1.f, 2.f, 3.f, 4.f, 5.f, 6.5f}).view({1, 1, 2, 3});
  EXPECT_TRUE(torch::equal(flat.inputs.at("input"), expected));
  EXPECT_TRUE(torch::equal(nested.inputs.at("input"), expected));
}

TEST(ServeProtocol, BinaryDataFollowsTheJsonHeader) {
  const auto values = torch::randn({2, 1, 2, 3});
  json header = {{"id", "42"},
                 {"inputs", {{{"name", "input"}, {"datatype", "FP32"}, {"shape", {2, 1, 2, 3}},
                              {"parameters", {{"binary_data_size", 48}}}}}},
                 {"outputs", {{{"name", "probabilities"}, {"parameters", {{"binary_data", true}}}}}}};
  const std::string text = header.dump();
  const auto parsed = serve::parse_infer_request(text + bytes_of(values), text.size(), kInputs, kOutputs);
  EXPECT_TRUE(torch::equal(parsed.inputs.at("input"), values));
  EXPECT_EQ(parsed.id, "42");
  EXPECT_THAT(parsed.outputs, ::testing::ElementsAre("probabilities"));
  EXPECT_TRUE(parsed.binary_outputs.at("probabilities"));
}

TEST(ServeProtocol, ResponsesCarryJsonOrBinaryOutputsAsAsked) {
  const auto probabilities = torch::tensor({{0.25f, 0.75f}});
  const serve::TensorMap outputs = {{"logits", torch::tensor({{1.f, 2.f}})}, {"probabilities", probabilities}};
  serve::InferRequest request;
  request.id = "7";
  const auto as_json = serve::encode_infer_response("nodule", request, outputs, kOutputs);
  const json body = json::parse(as_json.body);
  EXPECT_EQ(as_json.content_type, "application/json");
  EXPECT_FALSE(as_json.header_length);
  EXPECT_EQ(body["id"], "7");
  EXPECT_EQ(body["outputs"][1]["name"], "probabilities");
  EXPECT_EQ(body["outputs"][1]["shape"], json({1, 2}));
  EXPECT_EQ(body["outputs"][1]["data"], json({0.25, 0.75}));

  request.outputs = {"probabilities"};
  request.binary_outputs["probabilities"] = true;
  const auto as_binary = serve::encode_infer_response("nodule", request, outputs, kOutputs);
  ASSERT_TRUE(as_binary.header_length);
  const json header = json::parse(as_binary.body.substr(0, *as_binary.header_length));
  EXPECT_EQ(header["outputs"].size(), 1u);
  EXPECT_EQ(header["outputs"][0]["parameters"]["binary_data_size"], 8);
  EXPECT_EQ(as_binary.body.substr(*as_binary.header_length), bytes_of(probabilities));
}

TEST(ServeProtocol, TheBooksChunkBecomesABatchOfOne) {
  const TensorSpec spec{"input", {-1, 1, 32, 48, 48}};
  const auto chunk = torch::randn({1, 32, 48, 48});
  const auto batch = serve::parse_book_chunk(R"({"shape": [1, 32, 48, 48]})", bytes_of(chunk), spec);
  EXPECT_TRUE(torch::equal(batch, chunk.unsqueeze(0)));
  EXPECT_THAT(refusal([&] { serve::parse_book_chunk(R"({"shape": [1, 32, 48, 48]})", "abc", spec); }).second,
              HasSubstr("\"blob\" field has 3 bytes"));
  EXPECT_THAT(refusal([&] { serve::parse_book_chunk(R"({"shape": [1, 16, 48, 48]})",
                                                    bytes_of(torch::zeros({1, 16, 48, 48})), spec); })
                  .second,
              HasSubstr("wrong size in dimension 2"));
  EXPECT_THAT(refusal([&] { serve::parse_book_chunk("{\"shape\": 5}", "", spec); }).second,
              HasSubstr("needs a \"shape\""));
}

TEST(ServeProtocol, MalformedRequestsAre400WithTheProblemNamed) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "not valid JSON"},
      {"{\"inputs\": [", "not valid JSON"},
      {"[1, 2]", "not a JSON object"},
      {"{}", "needs \"inputs\""},
      {input_json({1, 1, 2, 3}, {1, 2, 3}).dump(), "has 3 values in \"data\", its shape holds 6"},
      {input_json({1, 1, 2, 3}, {1, 2, 3, 4, 5, 6, 7}).dump(), "has 7 values"},
      {input_json({1, 1, 2, 3}, {1, 2, 3, 4, 5, "x"}).dump(), "not all numbers"},
      {input_json({1, 2, 2, 3}, json::array()).dump(), "has 0 values"},
      {input_json({1, 1, 2}, {1, 2}).dump(), "wrong rank"},
      {input_json({1, 1, 3, 2}, {1, 2, 3, 4, 5, 6}).dump(), "wrong size in dimension 2"},
      {input_json({0, 1, 2, 3}, json::array()).dump(), "is empty"},
      {input_json({1, 1, 2, -3}, {1}).dump(), "not an integer in [0, 2^31)"},
      {input_json({1, 1, 2, 3.5}, {1}).dump(), "not an integer"},
      {input_json(json::array(), {1}).dump(), "list of 1 to 8 sizes"},
      {json({{"inputs", {{{"name", "other"}, {"datatype", "FP32"}, {"shape", {1}}, {"data", {1}}}}}}).dump(),
       "no input \"other\" (it has: input)"},
      {json({{"inputs", {{{"name", "input"}, {"datatype", "INT64"}, {"shape", {1, 1, 2, 3}}, {"data", {1}}}}}}).dump(),
       "datatype INT64, the model takes FP32"},
      {json({{"inputs", json::array()}}).dump(), "input \"input\" is missing"},
      {json({{"inputs", {input_json({1, 1, 2, 3}, {1, 2, 3, 4, 5, 6})["inputs"][0],
                         input_json({1, 1, 2, 3}, {1, 2, 3, 4, 5, 6})["inputs"][0]}}}).dump(),
       "given twice"},
      {[] {
         json request = input_json({1, 1, 2, 3}, {1, 2, 3, 4, 5, 6});
         request["outputs"] = {{{"name", "nothing"}}};
         return request.dump();
       }(),
       "no output \"nothing\""},
  };
  for (const auto& [body, message] : cases) {
    const auto [status, what] = refusal_of_body(body);
    EXPECT_EQ(status, 400) << body;
    EXPECT_THAT(what, HasSubstr(message)) << body;
  }
}

TEST(ServeProtocol, NonFiniteValuesAreRefusedWhereverTheyAre) {
  // 37 values: the check's vector loop and its scalar tail both see a bad value.
  const std::vector<int64_t> shape = {1, 1, 1, 37};
  const std::vector<TensorSpec> any_shape = {{"input", {-1, -1, -1, -1}}};
  const auto parse = [&](const std::string& body, size_t header_length) {
    return serve::parse_infer_request(body, header_length, any_shape, kOutputs);
  };
  json header = {{"inputs", {{{"name", "input"}, {"datatype", "FP32"}, {"shape", shape},
                              {"parameters", {{"binary_data_size", 37 * 4}}}}}}};
  const std::string text = header.dump();
  const float kBad[] = {std::nanf(""), std::numeric_limits<float>::infinity(),
                        -std::numeric_limits<float>::infinity()};
  for (const float bad : kBad) {
    for (const int64_t at : {0, 17, 31, 32, 36}) {
      auto values = torch::ones(shape);
      values[0][0][0][at] = bad;
      EXPECT_THAT(refusal([&] { parse(text + bytes_of(values), text.size()); }).second,
                  HasSubstr("NaN or infinite"))
          << bad << " at " << at;
    }
  }
  // The finite extremes pass.
  auto extremes = torch::zeros(shape);
  extremes[0][0][0][0] = std::numeric_limits<float>::max();
  extremes[0][0][0][1] = -std::numeric_limits<float>::max();
  extremes[0][0][0][2] = std::numeric_limits<float>::denorm_min();
  extremes[0][0][0][36] = -0.0f;
  const auto parsed = parse(text + bytes_of(extremes), text.size());
  EXPECT_TRUE(torch::equal(parsed.inputs.at("input"), extremes));
}

TEST(ServeProtocol, BinarySizesMustAgreeWithTheShapeAndTheBody) {
  const auto header_for = [](int64_t batch, int64_t bytes) {
    return json({{"inputs", {{{"name", "input"}, {"datatype", "FP32"}, {"shape", {batch, 1, 2, 3}},
                              {"parameters", {{"binary_data_size", bytes}}}}}}})
        .dump();
  };
  const std::string six_values = bytes_of(torch::ones({1, 1, 2, 3}));
  std::string header = header_for(1, 24);
  EXPECT_THAT(refusal_of_body(header + six_values.substr(0, 20), header.size()).second,
              HasSubstr("only 20 bytes of binary data remain (truncated body?)"));
  EXPECT_THAT(refusal_of_body(header + six_values + "x", header.size()).second,
              HasSubstr("1 bytes of binary data belong to no input"));
  EXPECT_THAT(refusal_of_body(header + six_values, header.size() + 1000).second,
              HasSubstr("Inference-Header-Content-Length is"));
  header = header_for(1, 20);
  EXPECT_THAT(refusal_of_body(header + six_values, header.size()).second,
              HasSubstr("its FP32 shape needs 24 bytes"));
  // A shape of 2^40 values with a few bytes behind it is refused before any allocation.
  header = header_for(int64_t{1} << 30, int64_t{24} << 30);
  EXPECT_THAT(refusal_of_body(header + six_values, header.size()).second, HasSubstr("but only 24 bytes"));
  EXPECT_THAT(refusal_of_body(input_json({2147483647, 2147483647, 2147483647, 2147483647}, {1}).dump()).second,
              HasSubstr("more than 2^40 elements"));
}

TEST(ServeProtocol, DeepNestingIsRefusedBeforeParsing) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_THAT(refusal_of_body(deep).second, HasSubstr("nests deeper than 16 levels"));
  // Brackets inside strings do not count.
  json request = input_json({1, 1, 2, 3}, {1, 2, 3, 4, 5, 6});
  request["id"] = std::string(1000, '[');
  EXPECT_EQ(serve::parse_infer_request(request.dump(), std::nullopt, kInputs, kOutputs).id.size(), 1000u);
}

// What Python requests' `files=` sends (the book's client), byte for byte in its form.
std::string book_form(const std::string& boundary, const std::string& blob) {
  return "--" + boundary + "\r\nContent-Disposition: form-data; name=\"meta\"; filename=\"meta\"\r\n\r\n" +
         "{\"shape\": [1, 2]}\r\n--" + boundary +
         "\r\nContent-Disposition: form-data; name=\"blob\"; filename=\"blob\"\r\n"
         "Content-Type: application/octet-stream\r\n\r\n" + blob + "\r\n--" + boundary + "--\r\n";
}

TEST(ServeProtocol, MultipartFieldsAreFoundByNameWhateverTheirBytes) {
  const std::string boundary = "0f1e2d3c4b5a";
  // Binary values may hold CR, LF and dashes; only CRLF--boundary ends a field.
  const std::string blob = std::string("\r\n--0f1e2d3c4b5\0\xff-", 18);
  const std::string body = book_form(boundary, blob);
  const auto fields = serve::parse_multipart_form_data("multipart/form-data; boundary=" + boundary, body);
  ASSERT_EQ(fields.size(), 2u);
  EXPECT_EQ(fields.at("meta"), "{\"shape\": [1, 2]}");
  EXPECT_EQ(fields.at("blob"), blob);
  // A quoted boundary, other parameters around it, and a preamble before the first part.
  const auto quoted = serve::parse_multipart_form_data(
      "Multipart/Form-Data; charset=utf-8; boundary=\"" + boundary + "\"", "preamble\r\n" + body);
  EXPECT_EQ(quoted.at("blob"), blob);
  // A quoted parameter may hold what looks like another: the field is still "meta".
  const std::string disguised = "--b\r\nContent-Disposition: form-data; filename=\"x; name=blob; \\\"y\"; "
                                "name=\"meta\"\r\n\r\n{}\r\n--b--\r\n";
  const auto named = serve::parse_multipart_form_data("multipart/form-data; boundary=b", disguised);
  ASSERT_EQ(named.size(), 1u);
  EXPECT_EQ(named.at("meta"), "{}");
}

TEST(ServeProtocol, MalformedMultipartBodiesAre400WithTheProblemNamed) {
  const std::string type = "multipart/form-data; boundary=b";
  const std::string body = book_form("b", "1234");
  const std::string meta_part = "--b\r\nContent-Disposition: form-data; name=\"meta\"\r\n\r\n{}\r\n";
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"text/plain", body, "not multipart/form-data"},
      {"multipart/form-data", body, "needs a boundary"},
      {"multipart/form-data; boundary=" + std::string(71, 'x'), body, "needs a boundary"},
      {type, "no delimiter at all", "no boundary"},
      {type, body.substr(0, body.size() - 12), "ends before its closing boundary"},
      {type, "--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--", "no Content-Disposition name"},
      {type, "--b\r\nContent-Disposition: form-data; name=a", "headers do not end"},
      {type, "--bjunk", "not followed by a line end"},
      {type, meta_part + meta_part + "--b--", "given twice"},
  };
  for (const auto& [content_type, text, problem] : cases) {
    const auto [status, message] = refusal([&] { serve::parse_multipart_form_data(content_type, text); });
    EXPECT_EQ(status, 400) << problem;
    EXPECT_THAT(message, HasSubstr(problem));
  }
}

}  // namespace
}  // namespace dlwpt::testing

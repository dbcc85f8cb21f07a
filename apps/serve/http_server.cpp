#include "apps/serve/http_server.h"

#include <strings.h>
#include <sys/socket.h>
#include <zlib.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace dlwpt::serve::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using ErrorCode = boost::system::error_code;

// ---- Fields

namespace {

bool same_name(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

std::string Fields::get(std::string_view name) const {
  for (const auto& [field, value] : fields_) {
    if (same_name(field, name)) return value;
  }
  return "";
}

size_t Fields::count(std::string_view name) const {
  size_t found = 0;
  for (const auto& field : fields_) found += same_name(field.first, name) ? 1 : 0;
  return found;
}

void Fields::set(std::string_view name, std::string value) {
  erase(name);
  add(std::string(name), std::move(value));
}

void Fields::erase(std::string_view name) {
  fields_.erase(std::remove_if(fields_.begin(), fields_.end(),
                               [&](const auto& field) { return same_name(field.first, name); }),
                fields_.end());
}

namespace {

// A request the layer refuses itself, with the status to answer.
struct Refusal {
  int status;
  std::string reason;
};

constexpr size_t kInflateChunk = size_t{64} << 10;
constexpr uint64_t kBodyReadBatch = uint64_t{256} << 10;
constexpr size_t kMaxBufferedBytes = size_t{128} << 10;
// A connection that is closed drains what the client still sends this long, so that the
// client reads the answer before the kernel resets the connection (RFC 9112, 9.6).
constexpr auto kLingerTime = std::chrono::seconds(2);

// A body sent with Content-Encoding gzip or deflate (zlib), inflated; more than `limit` bytes
// of it is a 413 as soon as they are out, so that a small bomb never takes the memory.
std::string inflate_body(const std::string& body, const std::string& coding, size_t limit) {
  z_stream stream{};
  if (inflateInit2(&stream, 32 + MAX_WBITS) != Z_OK) throw std::runtime_error("zlib cannot start");
  std::string inflated;
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  stream.avail_in = static_cast<uInt>(body.size());
  int status = Z_OK;
  while (status == Z_OK) {
    const size_t before = inflated.size();
    inflated.resize(before + kInflateChunk);
    stream.next_out = reinterpret_cast<Bytef*>(inflated.data() + before);
    stream.avail_out = static_cast<uInt>(kInflateChunk);
    status = inflate(&stream, Z_NO_FLUSH);
    inflated.resize(before + kInflateChunk - stream.avail_out);
    if (inflated.size() > limit) status = Z_MEM_ERROR;
  }
  inflateEnd(&stream);
  if (inflated.size() > limit) {
    throw Refusal{413, "the body is larger than this endpoint's limit of " + std::to_string(limit) +
                           " bytes once inflated"};
  }
  if (status != Z_STREAM_END || stream.avail_in != 0) {
    throw Refusal{400, "the body is not valid " + coding + " data (corrupt or truncated)"};
  }
  return inflated;
}

// The body as the application takes it: inflated when the client compressed it.
void decode_content(Request& request, size_t limit) {
  const std::string coding = request.headers.get("Content-Encoding");
  if (coding.empty() || strcasecmp(coding.c_str(), "identity") == 0) return;
  if (request.headers.count("Content-Encoding") > 1 ||
      (strcasecmp(coding.c_str(), "gzip") != 0 && strcasecmp(coding.c_str(), "deflate") != 0)) {
    throw Refusal{415, "the Content-Encodings taken are gzip and deflate"};
  }
  request.body = inflate_body(request.body, coding, limit);
  request.headers.erase("Content-Encoding");
}

// What makes a request's framing something this server does not take, although the parser
// could read it: a proxy in front and this server could disagree on where its body ends
// (request smuggling), or a body nobody reads would be taken for the client's next request.
std::optional<Refusal> framing_problem(const Request& request, unsigned version, bool has_body) {
  const size_t codings = request.headers.count("Transfer-Encoding");
  // RFC 9112, 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
  if (codings > 0 && version == 10) return Refusal{400, "Transfer-Encoding is not HTTP/1.0"};
  if (codings > 1 || (codings == 1 && strcasecmp(request.headers.get("Transfer-Encoding").c_str(), "chunked") != 0)) {
    return Refusal{501, "the only Transfer-Encoding taken is chunked"};
  }
  if (has_body && request.method != "POST" && request.method != "PUT") {
    return Refusal{400, request.method + " requests carry no body here"};
  }
  return std::nullopt;
}

bool is_known_method(const std::string& method) {
  for (const char* known : {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"}) {
    if (method == known) return true;
  }
  return false;
}

// What makes a head unacceptable, whatever its path.
std::optional<Refusal> head_problem(const Request& request, unsigned version, bool has_body) {
  if (!is_known_method(request.method)) return Refusal{501, "the method " + request.method + " is not implemented"};
  const size_t hosts = request.headers.count("Host");
  if (hosts > 1 || (version == 11 && hosts == 0)) {
    return Refusal{400, "an HTTP/1.1 request needs exactly one Host header"};  // RFC 9112, 3.2
  }
  return framing_problem(request, version, has_body);
}

// The path of a request target: origin form ("/v2/health/live?x") or absolute form
// ("http://host/v2/health/live", which servers must accept: RFC 9112, 3.2.2), without its query.
std::string target_path(const std::string& target) {
  std::string path = target.substr(0, target.find('?'));
  for (const std::string scheme : {"http://", "https://"}) {
    if (path.size() >= scheme.size() && strncasecmp(path.c_str(), scheme.c_str(), scheme.size()) == 0) {
      const size_t slash = path.find('/', scheme.size());
      return slash == std::string::npos ? "/" : path.substr(slash);
    }
  }
  return path;
}

// The parser's errors in a request's head, as the status and reason to answer.
Refusal head_refusal(const ErrorCode& error, const bhttp::request_parser<bhttp::string_body>& parser) {
  if (error == bhttp::error::header_limit) {
    // The parser keeps the request line once it has all of it.
    if (parser.get().target().empty()) return {414, "request line too long"};
    return {431, "request header fields too large"};
  }
  if (error == bhttp::error::bad_version) {
    return {400, "malformed request line (not METHOD TARGET HTTP/x.y, with CRLF line ends)"};
  }
  if (error == bhttp::error::bad_content_length) {
    return {400, "Content-Length is not a byte count, is given twice, or comes with Transfer-Encoding"};
  }
  if (error == bhttp::error::bad_transfer_encoding) {
    return {400, "Transfer-Encoding is given twice, or together with Content-Length"};
  }
  return {400, "malformed HTTP request (" + error.message() + ")"};
}

// A fixed pool of threads taking jobs in order; jobs left when it stops are dropped. Made
// once every thread has started (`on_start` runs torch's per-thread setup, which takes
// seconds for hundreds of threads on two cores): a server that says it listens answers at once.
class Workers {
 public:
  Workers(int threads, const HttpServer::ThreadStart& on_start) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this, on_start] {
        if (on_start) on_start();
        {
          std::lock_guard<std::mutex> lock(mutex_);
          ++started_;
        }
        has_job_.notify_all();
        work();
      });
    }
    std::unique_lock<std::mutex> lock(mutex_);
    has_job_.wait(lock, [&] { return started_ == threads; });
  }
  ~Workers() { stop(); }

  void post(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back(std::move(job));
    }
    has_job_.notify_one();
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
      jobs_.clear();
    }
    has_job_.notify_all();
    for (auto& thread : threads_) thread.join();
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        has_job_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (stopping_) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }

  std::mutex mutex_;
  std::condition_variable has_job_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  int started_ = 0;
  std::vector<std::thread> threads_;
};

std::chrono::milliseconds transfer_time(const HttpServerOptions& options, uint64_t bytes) {
  const uint64_t extra_ms = bytes / std::max<size_t>(options.min_body_rate() / 1000, 1);
  return options.io_timeout() + std::chrono::milliseconds(extra_ms);
}

}  // namespace

// ---- The server

class HttpServer::Impl {
 public:
  Impl(HttpServerOptions options, Admit admit, Handle handle, ErrorBody error_body, ThreadStart on_start)
      : options(std::move(options)),
        admit(std::move(admit)),
        handle(std::move(handle)),
        error_body(std::move(error_body)),
        on_thread_start(std::move(on_start)),
        workers(this->options.worker_threads(), on_thread_start) {}

  ~Impl() { workers.stop(); }

  void accept_next();

  Response refusal(int status, const std::string& reason) const {
    Response response;
    response.status = status;
    auto [body, type] = error_body(status, reason);
    response.set_content(std::move(body), type);
    if (status == 503) response.headers.set("Retry-After", "1");
    response.close = true;
    return response;
  }

  const HttpServerOptions options;
  const Admit admit;
  const Handle handle;
  const ErrorBody error_body;
  const ThreadStart on_thread_start;
  std::atomic<int64_t> open{0};
  std::atomic<int64_t> busy{0};
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  asio::steady_timer accept_retry{io};
  Workers workers;
};

namespace {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(HttpServer::Impl& server, tcp::socket socket, bool over_limit)
      : server_(server), stream_(std::move(socket)), over_limit_(over_limit) {
    ++server_.open;
  }
  ~Connection() {
    set_busy(false);
    --server_.open;
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start() { wait_for_request(); }

 private:
  const HttpServerOptions& options() const { return server_.options; }

  void set_busy(bool busy) {
    if (busy != busy_) server_.busy += busy ? 1 : -1;
    busy_ = busy;
  }

  // Idle until a request's first byte: the keep-alive timeout (io_timeout for a new
  // connection). Pipelined bytes already received go straight to the head.
  void wait_for_request() {
    if (buffer_.size() > 0) return read_head();
    stream_.expires_after(served_ == 0 ? options().io_timeout() : options().keep_alive_timeout());
    stream_.async_read_some(buffer_.prepare(8192), [self = shared_from_this()](ErrorCode error, size_t bytes) {
      if (error) return self->close_now();  // idle timeout, or the client left
      self->buffer_.commit(bytes);
      self->read_head();
    });
  }

  // The line and headers, in io_timeout from their first byte, however slowly each comes.
  void read_head() {
    set_busy(true);
    head_understood_ = false;
    request_ = Request{};
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(options().max_header_bytes()));
    // The application's limit is set once the head is read. (Beast 1.74 compares a declared
    // length with boost::none as if none were smaller than any length: no limit is the largest.)
    parser_->body_limit(std::numeric_limits<uint64_t>::max());
    stream_.expires_after(options().io_timeout());
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = shared_from_this()](ErrorCode error, size_t) { self->on_head(error); });
  }

  void on_head(const ErrorCode& error) {
    // A stream past its deadline is closed already (tcp_stream): nothing can be answered.
    if (error == beast::error::timeout) return close_now();
    if (error == bhttp::error::end_of_stream || error == asio::error::eof || error == asio::error::connection_reset) {
      return close_now();
    }
    if (error) {
      const Refusal refused = head_refusal(error, *parser_);
      return answer(server_.refusal(refused.status, refused.reason));
    }
    const auto& head = parser_->get();
    if (head.version() != 10 && head.version() != 11) {
      return answer(server_.refusal(505, "only HTTP/1.0 and HTTP/1.1 are spoken here"));
    }
    head_understood_ = true;
    version_ = head.version();
    client_keeps_alive_ = parser_->keep_alive();
    request_.method = std::string(head.method_string());
    request_.target = std::string(head.target());
    request_.path = target_path(request_.target);
    for (const auto& field : head) request_.headers.add(std::string(field.name_string()), std::string(field.value()));
    if (over_limit_) return answer(server_.refusal(503, "too many connections; try again"));
    if (const auto problem = head_problem(request_, version_, !parser_->is_done())) {
      return answer(server_.refusal(problem->status, problem->reason));
    }
    admit();
  }

  void admit() {
    Admission admission;
    try {
      admission = server_.admit(request_);
    } catch (const std::exception&) {
      return answer(server_.refusal(500, "internal error"));
    }
    if (admission.answer) return answer(std::move(*admission.answer));
    body_limit_ = admission.body_limit;
    context_ = std::move(admission.context);
    if (parser_->is_done()) return compute();
    const auto declared = parser_->content_length();
    if (declared && *declared > body_limit_) {
      return answer(body_too_large());
    }
    parser_->body_limit(body_limit_);  // chunked bodies, as they come
    if (version_ != 11 || !beast::iequals(request_.headers.get("Expect"), "100-continue")) return read_body();
    static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    stream_.expires_after(options().io_timeout());
    asio::async_write(stream_, asio::buffer(kContinue), [self = shared_from_this()](ErrorCode error, size_t) {
      if (error) return self->close_now();
      self->read_body();
    });
  }

  // The body, in io_timeout plus its size (declared, or the limit) at the least rate.
  void read_body() {
    const uint64_t size = parser_->content_length().value_or(body_limit_);
    if (!parser_->content_length()) {  // chunked: through the parser, as it comes
      stream_.expires_after(transfer_time(options(), size));
      return bhttp::async_read(stream_, buffer_, *parser_,
                               [self = shared_from_this()](ErrorCode error, size_t) { self->on_body(error); });
    }
    stream_.expires_never();
    body_deadline_.expires_after(transfer_time(options(), size));
    body_deadline_.async_wait([weak = weak_from_this()](ErrorCode error) {
      const auto self = weak.lock();
      if (error || !self || self->body_length_ == 0) return;  // cancelled, or the body came meanwhile
      self->body_timed_out_ = true;
      ErrorCode ignored;
      self->stream_.socket().close(ignored);
    });
    // A body of known length goes straight into the request, past the parser. Its memory is
    // taken as its bytes come, not from the length a head declares.
    body_length_ = static_cast<size_t>(size);
    const size_t buffered = std::min<size_t>(buffer_.size(), body_length_);
    body_.assign(static_cast<const char*>(buffer_.data().data()), buffered);
    buffer_.consume(buffered);
    wait_for_body();
  }

  // A client on the same machine sends a large body in pieces of a few kilobytes, and a reader
  // woken for each piece makes thousands of system calls per megabyte (a `recv`, a timer and
  // an `epoll_wait` each: most of the server's HTTP time for a 7 MiB U-Net slice). The socket
  // wakes the reader only once a batch of the remaining bytes is there (SO_RCVLOWAT), and one
  // `recv` takes all it holds.
  void wait_for_body() {
    const size_t remaining = body_length_ - body_.size();
    if (remaining == 0) return body_read({});
    set_receive_batch(std::min<uint64_t>(remaining, kBodyReadBatch));
    stream_.socket().async_wait(tcp::socket::wait_read, [self = shared_from_this()](ErrorCode error) {
      if (error) return self->body_read(self->body_timed_out_ ? ErrorCode(beast::error::timeout) : error);
      tcp::socket& socket = self->stream_.socket();
      const size_t held = socket.available(error);
      const size_t before = self->body_.size();
      const size_t wanted = std::min(self->body_length_ - before, std::max<size_t>(held, 1));
      self->body_.resize(before + wanted);
      const ssize_t got = ::recv(socket.native_handle(), self->body_.data() + before, wanted, MSG_DONTWAIT);
      self->body_.resize(before + static_cast<size_t>(std::max<ssize_t>(got, 0)));
      if (got == 0) return self->body_read(bhttp::error::partial_message);
      if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return self->body_read(ErrorCode(errno, boost::system::system_category()));
      }
      self->wait_for_body();
    });
  }

  void body_read(const ErrorCode& error) {
    body_deadline_.cancel();
    set_receive_batch(1);
    if (!error) {
      request_.body = std::move(body_);
      parser_.reset();  // the head is kept in request_
    }
    body_.clear();
    body_length_ = 0;
    on_body(error);
  }

  void set_receive_batch(uint64_t bytes) {
    const int wanted = static_cast<int>(std::max<uint64_t>(bytes, 1));
    if (wanted == receive_batch_) return;
    receive_batch_ = wanted;
    ::setsockopt(stream_.socket().native_handle(), SOL_SOCKET, SO_RCVLOWAT, &wanted, sizeof wanted);
  }

  void on_body(const ErrorCode& error) {
    if (!error) return compute();
    if (error == bhttp::error::body_limit) {
      return answer(body_too_large());
    }
    if (error == beast::error::timeout) return close_now();
    if (error == bhttp::error::partial_message || error == bhttp::error::end_of_stream) {
      return answer(server_.refusal(400, "the body ended before its announced length"));
    }
    if (error == asio::error::connection_reset) return close_now();
    if (error == bhttp::error::buffer_overflow) {
      return answer(server_.refusal(400, "a chunk-size line, its extensions or the trailers are too long"));
    }
    return answer(server_.refusal(400, "malformed body (" + error.message() + ")"));
  }

  Response body_too_large() const {
    return server_.refusal(413, "the body is larger than this endpoint's limit of " + std::to_string(body_limit_) +
                                    " bytes");
  }

  // The answer is computed on a worker; the connection reads nothing meanwhile.
  void compute() {
    if (parser_) request_.body = parser_->release().body();  // gone when the body came past it
    parser_.reset();
    stream_.expires_never();
    server_.workers.post([self = shared_from_this()] {
      Response response;
      try {
        decode_content(self->request_, self->body_limit_);
        self->server_.handle(self->request_, self->context_, response);
      } catch (const Refusal& refused) {
        response = self->server_.refusal(refused.status, refused.reason);
      } catch (const std::exception&) {
        response = self->server_.refusal(500, "internal error");
      }
      self->context_.reset();
      asio::post(self->server_.io, [self, answer = std::move(response)]() mutable { self->answer(std::move(answer)); });
    });
  }

  // Writes an answer; the connection closes after it when the answer says so, when a body was
  // left unread or the head was not understood, or when keep-alive ends.
  void answer(Response response) {
    set_busy(true);
    const bool body_unread = parser_ && !parser_->is_done();  // the parser is gone once the body is read
    const bool keep_alive = head_understood_ && client_keeps_alive_ && !body_unread && !response.close &&
                            !over_limit_ && served_ + 1 < options().keep_alive_requests();
    const bool is_head = request_.method == "HEAD";
    answer_ = {};
    answer_.version(head_understood_ ? version_ : 11);
    answer_.result(static_cast<unsigned>(response.status));
    for (const auto& [name, value] : response.headers.all()) answer_.insert(name, value);
    const size_t length = response.body.size();
    if (!is_head) answer_.body() = std::move(response.body);
    answer_.content_length(length);
    answer_.keep_alive(keep_alive);
    head_understood_ = false;
    stream_.expires_after(transfer_time(options(), length));
    bhttp::async_write(stream_, answer_, [self = shared_from_this(), keep_alive](ErrorCode error, size_t) {
      self->answer_ = {};
      self->set_busy(false);
      ++self->served_;
      if (error) return self->close_now();
      if (!keep_alive) return self->close_gracefully();
      self->parser_.reset();
      self->wait_for_request();
    });
  }

  // Ends the sending side, then drops what the client still sends for a moment before closing,
  // so that the answer is read rather than lost to a reset.
  void close_gracefully() {
    ErrorCode ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(kLingerTime);
    drain();
  }

  void drain() {
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(65536), [self = shared_from_this()](ErrorCode error, size_t) {
      if (error) return self->close_now();
      self->drain();
    });
  }

  void close_now() {
    set_busy(false);
    ErrorCode ignored;
    stream_.socket().close(ignored);
  }

  HttpServer::Impl& server_;
  beast::tcp_stream stream_;
  // Holds a head, pipelined requests and a chunked body's lines as they come; bounded, so that
  // a chunk-size line, its extensions or the trailers cannot grow without end.
  beast::flat_buffer buffer_{kMaxBufferedBytes};
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  Request request_;
  std::shared_ptr<void> context_;
  size_t body_limit_ = 0;
  bool head_understood_ = false;  // of the request being answered
  unsigned version_ = 11;
  bool client_keeps_alive_ = false;
  int receive_batch_ = 1;  // the socket's SO_RCVLOWAT
  asio::steady_timer body_deadline_{stream_.get_executor()};
  bool body_timed_out_ = false;
  std::string body_;        // a body of known length, as it arrives
  size_t body_length_ = 0;  // its length; 0 when none is being read
  bhttp::response<bhttp::string_body> answer_;
  int served_ = 0;
  const bool over_limit_;
  bool busy_ = false;
};

}  // namespace

void HttpServer::Impl::accept_next() {
  acceptor.async_accept([this](ErrorCode error, tcp::socket socket) {
    if (error == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (error) {  // out of file descriptors, most likely: try again shortly rather than spin
      accept_retry.expires_after(std::chrono::milliseconds(50));
      accept_retry.async_wait([this](ErrorCode) { accept_next(); });
      return;
    }
    ErrorCode ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    const bool over_limit = open >= options.max_connections();
    std::make_shared<Connection>(*this, std::move(socket), over_limit)->start();
    accept_next();
  });
}

HttpServer::HttpServer(HttpServerOptions options, Admit admit, Handle handle, ErrorBody error_body,
                       ThreadStart on_thread_start)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(admit), std::move(handle), std::move(error_body),
                                   std::move(on_thread_start))) {}

HttpServer::~HttpServer() {
  stop();
  impl_.reset();
}

int HttpServer::bind() {
  const auto& options = impl_->options;
  try {
    const tcp::endpoint endpoint(asio::ip::make_address(options.host()), static_cast<uint16_t>(options.port()));
    tcp::acceptor& acceptor = impl_->acceptor;
    acceptor.open(endpoint.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen(asio::socket_base::max_listen_connections);
    return acceptor.local_endpoint().port();
  } catch (const std::exception& failure) {
    throw std::runtime_error("cannot listen on " + options.host() + ":" + std::to_string(options.port()) + ": " +
                             failure.what());
  }
}

void HttpServer::serve() {
  if (impl_->on_thread_start) impl_->on_thread_start();
  impl_->accept_next();
  impl_->io.run();
}

void HttpServer::stop() {
  if (impl_) impl_->io.stop();
}

int64_t HttpServer::busy_connections() const { return impl_->busy; }

}  // namespace dlwpt::serve::http

#include "dlwpt/weights/atomic_file.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

#include <fcntl.h>
#include <unistd.h>

#include "dlwpt/weights/errors.h"

namespace dlwpt {

namespace fs = std::filesystem;

namespace {

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "host";
  return name;
}

std::string errno_text(int error) { return std::strerror(error); }


// Closes a descriptor when the scope ends, whatever way it ends.
class Descriptor {
 public:
  explicit Descriptor(int fd) : fd_(fd) {}
  ~Descriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  int get() const { return fd_; }
  // close() reports errors that write() deferred (NFS does); the descriptor is gone either way.
  int close() {
    const int status = ::close(fd_);
    fd_ = -1;
    return status;
  }

 private:
  int fd_;
};

fs::path temporary_for(const fs::path& target) {
  return target.parent_path() / ("." + target.stem().string() + ".partial-" +
                                 unique_name_suffix() + target.extension().string());
}

}  // namespace

std::string unique_name_suffix() {
  static const std::string host = host_name();
  static std::atomic<uint64_t> counter{0};
  return host + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

void sync_to_disk(const std::string& path) {
  Descriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw FileError("cannot open '" + path + "' to flush it: " + errno_text(errno));
  if (::fsync(fd.get()) != 0 && errno != EINVAL) {  // EINVAL: the filesystem cannot sync (fine)
    throw FileError("cannot flush '" + path + "' to the disk: " + errno_text(errno));
  }
}

void write_atomically(const std::string& path,
                      const std::function<void(const std::string& temporary)>& write) {
  const fs::path target(path);
  const fs::path temporary = temporary_for(target);
  try {
    write(temporary.string());
    std::error_code error;
    if (!fs::is_regular_file(temporary, error)) {
      throw FileError("the writer produced no file");
    }
    sync_to_disk(temporary.string());
    fs::rename(temporary, target, error);
    if (error) throw FileError("cannot rename the finished file into place: " + error.message());
  } catch (const std::exception& error) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    throw FileError("cannot write '" + path + "': " + first_line(message_of(error)));
  }
  // The rename is durable only once the folder's entries are; a failure here leaves the
  // complete file in place, so it is not an error of this write.
  try {
    sync_to_disk(target.parent_path().empty() ? "." : target.parent_path().string());
  } catch (const FileError&) {
  }
}

void write_file_atomically(const std::string& path, std::string_view bytes) {
  write_atomically(path, [&](const std::string& temporary) {
    Descriptor fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (fd.get() < 0) throw FileError(errno_text(errno));
    size_t written = 0;
    while (written < bytes.size()) {
      const ssize_t count = ::write(fd.get(), bytes.data() + written, bytes.size() - written);
      if (count < 0 && errno == EINTR) continue;
      if (count <= 0) throw FileError(count < 0 ? errno_text(errno) : "no progress writing");
      written += static_cast<size_t>(count);
    }
    if (fd.close() != 0) throw FileError(errno_text(errno));
  });
}

void write_serialized_atomically(const std::string& path,
                                 const std::function<void(std::ostream& out)>& serialize) {
  std::ostringstream out;
  serialize(out);
  if (!out) throw FileError("cannot write '" + path + "': the serializer failed");
  write_file_atomically(path, out.str());
}

}  // namespace dlwpt

// End-to-end tests of the pixflow CLI (apps/pixflow/main.cpp), run as a real subprocess against the
// nginx fixture: exit codes, the JSON report, the stderr summary, config errors and --dump-config.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>

#include <nlohmann/json.hpp>

#include "pixflow/tasks/decode.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using pixflow::test::photo;
using pixflow::test::server_url;
using pixflow::test::TempDir;

extern char** environ;

namespace {

struct CliResult {
  int code = -1;
  std::string out;
  std::string err;
};

std::string read_text(const fs::path& file) {
  const auto bytes = pixflow::test::read_bytes(file);
  return {bytes.begin(), bytes.end()};
}

using pixflow::test::write_text;

/// Runs the CLI with `args` (argv[1..]), stdin from `input` (or /dev/null), stdout and stderr captured
/// through files in a scratch folder; environment variables named in `unset` are removed for the child.
CliResult run_cli(const std::vector<std::string>& args, const std::optional<fs::path>& input = std::nullopt,
                  const std::vector<std::string>& unset = {}) {
  TempDir scratch;
  const std::string program = pixflow::test::cli_path().string();
  std::vector<std::string> argv_text{program};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);

  // Everything the child needs is prepared before fork (only async-signal-safe calls after it).
  std::vector<std::string> env_text;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    bool drop = false;
    for (const auto& name : unset) drop = drop || entry.rfind(name + "=", 0) == 0;
    if (!drop) env_text.push_back(entry);
  }
  std::vector<char*> envp;
  for (auto& e : env_text) envp.push_back(e.data());
  envp.push_back(nullptr);

  const fs::path out_file = scratch / "stdout";
  const fs::path err_file = scratch / "stderr";
  const int in_fd = ::open(input ? input->c_str() : "/dev/null", O_RDONLY | O_CLOEXEC);
  const int out_fd = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int err_fd = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  REQUIRE(in_fd >= 0);
  REQUIRE(out_fd >= 0);
  REQUIRE(err_fd >= 0);

  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::dup2(in_fd, 0) < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(err_fd, 2) < 0) ::_exit(126);
    ::execve(program.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(in_fd);
  ::close(out_fd);
  ::close(err_fd);
  REQUIRE(pid > 0);
  int status = 0;
  pid_t waited = 0;
  do {
    waited = ::waitpid(pid, &status, 0);
  } while (waited < 0 && errno == EINTR);
  REQUIRE(waited == pid);

  CliResult result;
  REQUIRE(WIFEXITED(status));
  result.code = WEXITSTATUS(status);
  result.out = read_text(out_file);
  result.err = read_text(err_file);
  return result;
}

/// The running fixture's state folder.
fs::path server_dir() {
  (void)server_url();
  return fs::path(std::getenv("PIXFLOW_SERVER_DIR"));
}

nlohmann::json expected_json() {
  return nlohmann::json::parse(read_text(server_dir() / "expected.json"));
}

/// A loopback port nothing listens on (bound, then closed).
int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  socklen_t length = sizeof address;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  ::close(fd);
  return ntohs(address.sin_port);
}

using pixflow::test::files_in;

/// OpenCV 4.6 reads no GIF: a GIF original is read with pixflow's own decoder.
bool decodes(const fs::path& file) { return pixflow::test::decode_file(file, {64, 64}).has_value(); }

/// A few good photo URLs of the fixture, as a URL-list file.
std::vector<std::string> good_urls() {
  const std::string base = server_url();
  return {base + "/photos/aqua.jpg", base + "/photos/wood.webp", base + "/redirect/garden.png"};
}

std::string url_list_text(const std::vector<std::string>& urls) {
  std::string text = "# good photos only\n";
  for (const auto& url : urls) text += url + "\n";
  return text;
}

void check_good_outputs(const fs::path& out) {
  const std::set<std::string> want{"aqua.jpg",  "aqua_thumbnail.jpg",   "wood.webp",
                                   "wood_thumbnail.webp", "garden.png", "garden_thumbnail.png"};
  CHECK(files_in(out) == want);
  for (const auto& name : want) {
    INFO(name);
    CHECK(decodes(out / name));
  }
  CHECK(pixflow::test::read_bytes(out / "garden.png") == pixflow::test::read_bytes(photo("garden.png")));
}

}  // namespace

TEST_CASE("pixflow --help lists the subcommands and --version prints the version", "[e2e][cli]") {
  const CliResult help = run_cli({"--help"});
  CHECK(help.code == 0);
  CHECK_THAT(help.out, Catch::Contains("gallery"));
  CHECK_THAT(help.out, Catch::Contains("urls"));
  CHECK_THAT(help.out, Catch::Contains("thumbs"));

  const CliResult version = run_cli({"--version"});
  CHECK(version.code == 0);
  CHECK_THAT(version.out, Catch::StartsWith("pixflow 0.1.0"));

  const CliResult none = run_cli({});
  CHECK(none.code == 2);
}

TEST_CASE("pixflow gallery writes a JSON report, items as they finish with their listing index, and summarises failures by reason",
          "[e2e][cli][server]") {
  TempDir dir;
  const fs::path out = dir / "out";
  const fs::path report_file = dir / "report.json";
  const CliResult run = run_cli({"gallery", "--api", server_url(), "--client-id", "x", "--pages", "0", "--out",
                                 out.string(), "--report", report_file.string()});
  INFO(run.err);
  CHECK(run.code == 1);  // the GIF cut short fails

  const nlohmann::json report = nlohmann::json::parse(read_text(report_file));
  const nlohmann::json expected = expected_json();
  std::vector<nlohmann::json> want;
  for (const auto& e : expected.at("items"))
    if (e.at("outcome") != "dropped") want.push_back(e);
  const auto& items = report.at("items");
  REQUIRE(items.size() == want.size());

  std::map<std::string, nlohmann::json> by_url;
  std::vector<std::string> plain_order;
  for (const auto& item : items) {
    REQUIRE(item.contains("url"));
    REQUIRE(item.contains("status"));
    REQUIRE(item.at("outputs").is_array());
    by_url[item.at("url").get<std::string>()] = item;
  }
  std::vector<std::string> plain_want;
  for (const auto& e : want) {
    const std::string link = e.at("link").get<std::string>();
    INFO(link);
    REQUIRE(by_url.count(link) == 1);
    const auto& item = by_url[link];
    CHECK(item.at("status") == e.at("outcome"));
    if (e.at("outcome") == "ok") {
      const std::string name = e.at("name").get<std::string>();
      CHECK(item.at("outputs").size() == 2);
      CHECK(item.at("outputs").at(0) == name);
      for (const auto& output : item.at("outputs")) CHECK(decodes(out / output.get<std::string>()));
    } else {
      CHECK(item.at("reason") == e.at("reason"));
      CHECK(item.at("outputs").empty());
    }
    if (e.at("album").is_null()) plain_want.push_back(link);
  }
  // Items are written as they finish; each has its place in the listing: sorted by it, plain
  // (non-album) items are in listing order (album members are free within their album).
  std::vector<nlohmann::json> by_index(items.begin(), items.end());
  std::sort(by_index.begin(), by_index.end(), [](const auto& a, const auto& b) { return a.at("index") < b.at("index"); });
  for (std::size_t i = 0; i < by_index.size(); ++i) CHECK(by_index[i].at("index") == i);
  std::set<std::string> plain(plain_want.begin(), plain_want.end());
  for (const auto& item : by_index)
    if (plain.count(item.at("url").get<std::string>()) != 0) plain_order.push_back(item.at("url").get<std::string>());
  CHECK(plain_order == plain_want);

  for (const char* name : {"fetch", "download", "decode", "thumbnail", "write"}) {
    INFO(name);
    REQUIRE(report.at("nodes").contains(name));
    const auto& node = report.at("nodes").at(name);
    CHECK((node.at("concurrency").is_number_unsigned() || node.at("concurrency") == "unlimited"));
    CHECK(node.at("items").is_number_unsigned());
    CHECK(node.at("failed").is_number_unsigned());
    CHECK(node.at("busy_s").is_number());
  }
  CHECK(report.at("nodes").at("decode").at("failed") == 1);
  CHECK(report.at("wall_s").is_number());
  CHECK(report.at("wall_s").get<double>() > 0.0);

  // The summary on stderr: totals, then failures grouped by reason.
  CHECK_THAT(run.err, Catch::Contains("2 failed"));
  CHECK_THAT(run.err, Catch::Contains("failed ×1: truncated gif"));
  CHECK_THAT(run.err, Catch::Contains("failed ×1: truncated mp4"));  // the fixture's clip: an ftyp box only
  CHECK(run.out.empty());
}

TEST_CASE("pixflow urls reads a file or stdin and exits 0 when every URL is good", "[e2e][cli][server]") {
  TempDir dir;
  const fs::path list = dir / "urls.txt";
  write_text(list, url_list_text(good_urls()));

  SECTION("a file") {
    const CliResult run = run_cli({"urls", list.string(), "--out", (dir / "out").string(), "--quiet"});
    INFO(run.err);
    CHECK(run.code == 0);
    CHECK(run.err.empty());  // --quiet
    check_good_outputs(dir / "out");
  }
  SECTION("stdin, report on stdout") {
    const CliResult run = run_cli({"urls", "-", "--out", (dir / "out").string(), "--report", "-"}, list);
    INFO(run.err);
    CHECK(run.code == 0);
    check_good_outputs(dir / "out");
    const nlohmann::json report = nlohmann::json::parse(run.out);
    REQUIRE(report.at("items").size() == 3);
    for (const auto& item : report.at("items")) {  // as they finished; `index` is the input order
      const std::size_t i = item.at("index");
      REQUIRE(i < 3);
      CHECK(item.at("url") == good_urls()[i]);
      CHECK(item.at("status") == "ok");
    }
    CHECK_THAT(run.err, Catch::Contains("3 done"));
  }
  SECTION("a missing list file is an unusable source") {
    const CliResult run = run_cli({"urls", (dir / "absent.txt").string(), "--out", (dir / "out").string()});
    CHECK(run.code == 3);
    CHECK_THAT(run.err, Catch::Contains("absent.txt"));
  }
}

TEST_CASE("pixflow thumbs makes thumbnails only, and a missing folder is an unusable source", "[e2e][cli]") {
  TempDir dir;
  const fs::path in = dir / "in";
  fs::create_directories(in);
  for (const char* name : {"aqua.jpg", "ladybird-alpha.png", "wood.webp", "storm-rotated.jpg"})
    fs::copy_file(photo(name), in / name);

  const CliResult run = run_cli({"thumbs", in.string(), "--out", (dir / "out").string(), "--size", "64x64"});
  INFO(run.err);
  CHECK(run.code == 0);
  const std::set<std::string> want{"aqua_thumbnail.jpg", "ladybird-alpha_thumbnail.png", "wood_thumbnail.webp",
                                   "storm-rotated_thumbnail.jpg"};
  CHECK(files_in(dir / "out") == want);
  for (const auto& name : want) {
    INFO(name);
    const cv::Mat image = cv::imread((dir / "out" / name).string(), cv::IMREAD_UNCHANGED);
    REQUIRE_FALSE(image.empty());
    CHECK(std::max(image.cols, image.rows) == 64);
  }
  CHECK(files_in(in).size() == 4);  // the source folder is left alone

  const CliResult missing = run_cli({"thumbs", (dir / "absent").string(), "--out", (dir / "out2").string()});
  CHECK(missing.code == 3);
  CHECK_THAT(missing.err, Catch::Contains("absent"));
}

TEST_CASE("pixflow gallery exits 3 when the listing cannot be read, 2 when no client id is given", "[e2e][cli][server]") {
  TempDir dir;
  SECTION("the API refuses a listing without Client-ID (403)") {
    const CliResult run =
        run_cli({"gallery", "--api", server_url(), "--out", (dir / "out").string()}, std::nullopt, {"IMGUR_CLIENT_ID"});
    CHECK(run.code == 3);
    CHECK_THAT(run.err, Catch::Contains("403"));
    CHECK(files_in(dir / "out").empty());
  }
  SECTION("the API is unreachable") {
    const std::string api = "http://127.0.0.1:" + std::to_string(closed_port());
    const CliResult run = run_cli({"gallery", "--api", api, "--client-id", "x", "--out", (dir / "out").string()});
    CHECK(run.code == 3);
    CHECK_THAT(run.err, Catch::Contains("listing"));
    CHECK(files_in(dir / "out").empty());
  }
  SECTION("Imgur itself without a client id is a usage error") {
    const CliResult run = run_cli({"gallery", "--out", (dir / "out").string()}, std::nullopt, {"IMGUR_CLIENT_ID"});
    CHECK(run.code == 2);
    CHECK_THAT(run.err, Catch::Contains("--client-id"));
    CHECK_FALSE(fs::exists(dir / "out"));
  }
}

TEST_CASE("pixflow gallery --pages 0 exits 0 when the page after the empty one answers 404", "[e2e][cli][server]") {
  // Pages are fetched two at a time: the answer past the end is not a listing error (five runs, as the
  // order in which the two pages come back varies).
  for (int run_number = 0; run_number < 5; ++run_number) {
    TempDir dir;
    const CliResult run = run_cli({"gallery", "--api", server_url(), "--client-id", "x", "--sort", "strict", "--pages", "0",
                                   "--out", (dir / "out").string()});
    CHECK(run.code == 0);
    CHECK_THAT(run.err, !Catch::Contains("listing"));
    CHECK(files_in(dir / "out").size() == 4);  // two originals, two thumbnails
  }
}

TEST_CASE("pixflow rejects bad configs and options with exit 2, naming the JSON path, before doing anything",
          "[e2e][cli][slow]") {
  struct Case {
    const char* what;
    const char* document;  // nullptr: the config file does not exist
    const char* must_mention;
  };
  const std::vector<Case> cases{
      {"unknown key", R"({"nodes": {"download": {"concurency": 8}}})", "/nodes/download/concurency"},
      {"wrong type", R"({"threads": "four"})", "/threads"},
      {"a float for an integer", R"({"threads": 1.5})", "/threads"},
      {"a zero concurrency", R"({"nodes": {"decode": {"concurrency": 0}}})", "/nodes/decode/concurrency"},
      {"a zero max_in_flight", R"({"max_in_flight": 0})", "/max_in_flight"},
      {"a bad size", R"({"nodes": {"thumbnail": {"sizes": ["12x"]}}})", "/nodes/thumbnail/sizes/0"},
      {"an unknown format", R"({"nodes": {"thumbnail": {"format": "bmp"}}})", "/nodes/thumbnail/format"},
      {"a syntax error", "{\"threads\": 2,\n  \"max_in_flight\": }\n", "line 2, column"},
      {"a missing file", nullptr, "cannot read"},
  };
  TempDir dir;
  const fs::path list = dir / "urls.txt";
  write_text(list, "http://127.0.0.1:1/never-fetched.jpg\n");
  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.what) {
      const fs::path config = dir / (c.document != nullptr ? "config.json" : "absent-config.json");
      if (c.document != nullptr) write_text(config, c.document);
      const fs::path out = dir / "out";
      const CliResult run = run_cli({"urls", list.string(), "--config", config.string(), "--out", out.string()});
      INFO(run.err);
      CHECK(run.code == 2);
      CHECK_THAT(run.err, Catch::Contains(c.must_mention));
      CHECK_THAT(run.err, Catch::Contains("config.json"));
      CHECK(files_in(out).empty());
      CHECK(run.out.empty());
    }
  }
  SECTION("a bad --size") {
    const CliResult run = run_cli({"urls", list.string(), "--size", "12x", "--out", (dir / "out").string()});
    CHECK(run.code == 2);
    CHECK_THAT(run.err, Catch::Contains("--size"));
    CHECK_FALSE(fs::exists(dir / "out"));
  }
  SECTION("a bad --format") {
    const CliResult run = run_cli({"urls", list.string(), "--format", "tiff", "--out", (dir / "out").string()});
    CHECK(run.code == 2);
    CHECK_THAT(run.err, Catch::Contains("--format"));
    CHECK_FALSE(fs::exists(dir / "out"));
  }
  SECTION("no --out") {
    const CliResult run = run_cli({"urls", list.string()});
    CHECK(run.code == 2);
    CHECK_THAT(run.err, Catch::Contains("--out"));
  }
  SECTION("a negative --threads is refused, not wrapped to a huge count") {
    const CliResult run = run_cli({"urls", list.string(), "--threads", "-1", "--out", (dir / "out").string()});
    CHECK(run.code == 2);
    CHECK_THAT(run.err, Catch::Contains("--threads"));
    CHECK_FALSE(fs::exists(dir / "out"));
  }
  SECTION("an --out that is a file is a usage error (2), not an unusable source (3)") {
    write_text(dir / "a-file", "x");
    const CliResult run = run_cli({"urls", list.string(), "--out", (dir / "a-file").string()});
    CHECK(run.code == 2);
    CHECK_THAT(run.err, Catch::Contains("--out") && Catch::Contains("a-file"));
  }
  SECTION("an --out on a read-only file system is refused before anything runs") {
    // A read-only mount stops root too (file modes do not). Needs root and mount(2): skipped without.
    fs::create_directories(dir / "ro");
    const std::string mount = "mount -t tmpfs -o ro,size=1m tmpfs " + (dir / "ro").string() + " 2>/dev/null";
    if (std::system(mount.c_str()) != 0) {
      WARN("cannot mount a read-only tmpfs here (not root?): case skipped");
    } else {
      const CliResult run = run_cli({"urls", list.string(), "--out", (dir / "ro").string()});
      CHECK(std::system(("umount " + (dir / "ro").string()).c_str()) == 0);
      CHECK(run.code == 2);
      CHECK_THAT(run.err, Catch::Contains("--out") && Catch::Contains("read-only file system"));
    }
  }
  SECTION("a report in a folder that does not exist is refused before the run") {
    const CliResult run = run_cli({"urls", list.string(), "--report", (dir / "no-such-folder" / "r.json").string(),
                                   "--out", (dir / "out").string()});
    CHECK(run.code == 2);
    CHECK_THAT(run.err, Catch::Contains("--report"));
    CHECK_FALSE(fs::exists(dir / "out"));
  }
}

TEST_CASE("pixflow --dump-config round-trips, and the command line wins over the config file", "[e2e][cli]") {
  TempDir dir;
  const CliResult first = run_cli({"urls", "-", "--dump-config"});
  REQUIRE(first.code == 0);
  const nlohmann::json dumped = nlohmann::json::parse(first.out);
  CHECK(dumped.at("threads") == 0);
  CHECK(dumped.at("nodes").at("thumbnail").at("sizes") == nlohmann::json::array({"128x128"}));

  write_text(dir / "dumped.json", first.out);
  const CliResult again = run_cli({"urls", "-", "--config", (dir / "dumped.json").string(), "--dump-config"});
  REQUIRE(again.code == 0);
  CHECK(again.out == first.out);

  write_text(dir / "tuned.json",
             R"({"threads": 3, "max_in_flight": 7, "nodes": {"thumbnail": {"sizes": ["32x32"], "format": "png"}}})");
  const CliResult tuned = run_cli({"urls", "-", "--config", (dir / "tuned.json").string(), "--threads", "1", "--size",
                                   "200x100", "--size", "64x64", "--dump-config"});
  REQUIRE(tuned.code == 0);
  const nlohmann::json effective = nlohmann::json::parse(tuned.out);
  CHECK(effective.at("threads") == 1);        // the command line wins
  CHECK(effective.at("max_in_flight") == 7);  // the file still counts where the command line is silent
  CHECK(effective.at("nodes").at("thumbnail").at("sizes") == nlohmann::json::array({"200x100", "64x64"}));
  CHECK(effective.at("nodes").at("thumbnail").at("format") == "png");
}

TEST_CASE("the progress line shows with --progress, and never when stderr is not a terminal", "[e2e][cli][server]") {
  TempDir dir;
  // One slow transfer (~2 s at the fixture's 20 kB/s) outlasts the 0.5 s progress interval.
  write_text(dir / "urls.txt", server_url() + "/slow/aqua.jpg\n");
  const CliResult quiet_tty = run_cli({"urls", (dir / "urls.txt").string(), "--out", (dir / "a").string()});
  CHECK(quiet_tty.code == 0);
  CHECK(quiet_tty.err.find('\r') == std::string::npos);  // stderr is a file here: no live line

  const CliResult shown = run_cli({"urls", (dir / "urls.txt").string(), "--out", (dir / "b").string(), "--progress"});
  CHECK(shown.code == 0);
  CHECK_THAT(shown.err, Catch::Contains("\r"));
  CHECK_THAT(shown.err, Catch::Contains("items/s"));
  CHECK_THAT(shown.err, Catch::Contains("download 1+0"));  // one transfer running, none waiting

  const CliResult silenced =
      run_cli({"urls", (dir / "urls.txt").string(), "--out", (dir / "c").string(), "--progress", "--quiet"});
  CHECK(silenced.code == 0);
  CHECK(silenced.err.empty());
}

// index_page.hpp: the page's order, links and escaping (hostile URLs and names stay text), the atomic
// write that never replaces someone else's index.html, and the page itself in a real headless Chromium
// driven through chromedriver's WebDriver HTTP API (libcurl): every thumbnail loads, the screenshot is
// not blank, no script ran or exists.
#include <catch2/catch.hpp>

#include <algorithm>
#include <curl/curl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "pixflow/tasks/index_page.hpp"
#include "support.hpp"

using namespace pixflow::tasks;
using pixflow::test::photo;
using pixflow::test::read_bytes;
using pixflow::test::TempDir;
using json = nlohmann::json;

namespace {

ItemReport item(std::string input, ItemStatus status, std::vector<std::string> outputs, std::string reason = {},
                std::string stage = {}, bool is_path = false) {
  ItemReport r;
  r.input = std::move(input);
  r.is_path = is_path;
  r.status = status;
  r.outputs = std::move(outputs);
  r.reason = std::move(reason);
  r.stage = std::move(stage);
  return r;
}

std::string text_of(const std::filesystem::path& file) {
  const auto bytes = read_bytes(file);
  return {bytes.begin(), bytes.end()};
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

/// What a hostile gallery can put in a URL or a name.
const std::string hostile = R"(x"><script>alert(1)</script><img src=y onerror='alert(2)'>&amp;)";

}  // namespace

TEST_CASE("index_page_html: thumbnails in input order linked to their originals, failures and skips listed", "[index]") {
  const std::vector<ItemReport> items = {
      item("https://i.example.com/b.jpg", ItemStatus::ok, {"b.jpg", "b_thumbnail.jpg"}),
      item("https://i.example.com/missing.jpg", ItemStatus::failed, {}, "http 404", "download"),
      item("https://i.example.com/clip.mp4", ItemStatus::skipped, {}, "not an image (video/mp4)", "list"),
      item("https://i.example.com/a.png", ItemStatus::skipped, {"a.png", "a_thumbnail.png"}, "already done"),
      item("https://i.example.com/c%20d.webp", ItemStatus::ok, {"c d.webp", "c d_thumbnail.webp"}),
  };
  const std::string page = index_page_html(items);
  INFO(page);
  // In input order, the resumed item ("already done") among them.
  const auto b = page.find("src=\"b_thumbnail.jpg\"");
  const auto a = page.find("src=\"a_thumbnail.png\"");
  const auto cd = page.find("src=\"c%20d_thumbnail.webp\"");
  REQUIRE(b != std::string::npos);
  REQUIRE(a != std::string::npos);
  REQUIRE(cd != std::string::npos);
  CHECK(b < a);
  CHECK(a < cd);
  CHECK(count(page, "<img ") == 3);
  // Each links to the original saved in OUT (relative, percent-encoded).
  CHECK(page.find("<a href=\"b.jpg\"><img src=\"b_thumbnail.jpg\"") != std::string::npos);
  CHECK(page.find("<a href=\"c%20d.webp\">") != std::string::npos);
  // Failures and skips with stage and reason; the failed one's URL linked.
  CHECK(page.find("<h2>Failed (1)</h2>") != std::string::npos);
  CHECK(page.find("<h2>Skipped (1)</h2>") != std::string::npos);
  CHECK(page.find("<td>2</td><td><a href=\"https://i.example.com/missing.jpg\">https://i.example.com/missing.jpg</a></td>"
                  "<td>download</td><td>http 404</td>") != std::string::npos);
  CHECK(page.find("not an image (video/mp4)") != std::string::npos);
  CHECK(page.find("5 items: 2 done, 1 failed, 2 skipped; 3 thumbnails") != std::string::npos);
  // Self-contained: no script, nothing loaded from elsewhere (no src or stylesheet but OUT's files).
  CHECK(page.find("<script") == std::string::npos);
  CHECK(page.find("src=\"http") == std::string::npos);
  CHECK(page.find("<link") == std::string::npos);
  CHECK(index_page_html(items) == page);  // deterministic
}

TEST_CASE("index_page_html escapes hostile URLs, names and reasons and never links another scheme", "[index]") {
  const std::vector<ItemReport> items = {
      item("https://evil.example.com/" + hostile + ".jpg", ItemStatus::ok, {hostile + ".jpg", hostile + "_thumbnail.jpg"}),
      item("https://evil.example.com/" + hostile, ItemStatus::failed, {}, "corrupt jpeg " + hostile, "decode"),
      item("javascript:alert(3)", ItemStatus::failed, {}, "unsupported URL", "download"),
      item("https://evil.example.com/ctl\x01\x7f.jpg", ItemStatus::skipped, {}, "reason\x02", "list"),
      item("/photos/" + hostile + ".jpg", ItemStatus::failed, {}, "truncated jpeg", "decode", true),
  };
  const std::string page = index_page_html(items, IndexPageOptions{.originals_saved = true, .title = "<b>" + hostile});
  INFO(page);
  CHECK(page.find("<script") == std::string::npos);
  CHECK(page.find("<img src=y") == std::string::npos);
  CHECK(page.find("onerror='") == std::string::npos);
  CHECK(page.find("<b>") == std::string::npos);
  CHECK(page.find("href=\"javascript:") == std::string::npos);
  CHECK(page.find("&lt;script&gt;alert(1)&lt;/script&gt;") != std::string::npos);  // shown as text
  CHECK(page.find("&amp;amp;") != std::string::npos);                                // & escaped once more
  CHECK(page.find("x&quot;&gt;") != std::string::npos);
  CHECK(page.find("&#39;alert(2)&#39;") != std::string::npos);
  // In links, every byte of a name that is not plain is percent-encoded: no quote ends an attribute.
  CHECK(page.find("href=\"x%22%3E%3Cscript%3E") != std::string::npos);
  CHECK(page.find("src=\"x%22%3E%3Cscript%3E") != std::string::npos);
  // A URL keeps its structure but loses what cannot stand in an attribute.
  CHECK(page.find("href=\"https://evil.example.com/x%22%3E%3Cscript%3Ealert(1)%3C/script%3E") != std::string::npos);
  // Control characters never reach the page.
  CHECK(page.find('\x01') == std::string::npos);
  CHECK(page.find('\x02') == std::string::npos);
  CHECK(page.find('\x7f') == std::string::npos);
  // Every attribute value is closed by its own quote: quotes balance on every line.
  std::size_t start = 0;
  for (std::size_t end = page.find('\n'); end != std::string::npos; start = end + 1, end = page.find('\n', start)) {
    const std::string line = page.substr(start, end - start);
    INFO(line);
    CHECK(count(line, "\"") % 2 == 0);
    CHECK(count(line, "<") == count(line, ">"));
  }
}

TEST_CASE("index_page_html for thumbs links each thumbnail to its local file", "[index]") {
  const std::vector<ItemReport> items = {
      item("/data/in/aqua shot.jpg", ItemStatus::ok, {"aqua shot_thumbnail.jpg"}, "", "", true),
      item("relative/dune.jpg", ItemStatus::ok, {"dune_thumbnail.jpg"}, "", "", true),
  };
  const std::string page = index_page_html(items, IndexPageOptions{.originals_saved = false});
  INFO(page);
  CHECK(page.find("<a href=\"file:///data/in/aqua%20shot.jpg\"><img src=\"aqua%20shot_thumbnail.jpg\" alt=\"aqua shot.jpg\">") !=
        std::string::npos);
  const std::string absolute = (std::filesystem::current_path() / "relative/dune.jpg").string();
  CHECK(page.find("href=\"file://" + absolute + "\"") != std::string::npos);
}

TEST_CASE("write_index_page writes OUT/index.html atomically and never replaces a page it did not write", "[index]") {
  TempDir out;
  const std::vector<ItemReport> items = {item("https://i.example.com/a.jpg", ItemStatus::ok, {"a.jpg", "a_thumbnail.jpg"})};
  auto written = write_index_page(out.path(), items);
  REQUIRE(written.has_value());
  CHECK(*written == out / "index.html");
  CHECK(text_of(out / "index.html") == index_page_html(items));
  CHECK(pixflow::test::files_in(out.path()) == std::set<std::string>{"index.html"});  // no temporary left
  // A rerun replaces its own page.
  const std::vector<ItemReport> more = {items[0], item("https://i.example.com/b.jpg", ItemStatus::failed, {}, "http 500", "download")};
  REQUIRE(write_index_page(out.path(), more).has_value());
  CHECK(text_of(out / "index.html") == index_page_html(more));
  // Someone else's index.html (thumbs DIR --out DIR over a site) is left alone.
  TempDir site;
  pixflow::test::write_text(site / "index.html", "<!DOCTYPE html><title>my site</title>");
  const auto refused = write_index_page(site.path(), items);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().reason == "cannot write index.html: a file not written by pixflow has that name");
  CHECK(text_of(site / "index.html") == "<!DOCTYPE html><title>my site</title>");
  // A folder where the page cannot be written: write_file_atomically's reason.
  const auto unwritable = write_index_page(pixflow::test::unwritable_folder(site), items);
  REQUIRE_FALSE(unwritable.has_value());
  CHECK(unwritable.error().reason.rfind("cannot write", 0) == 0);
}

// --- the page in a real browser ---------------------------------------------------------------------

namespace {

/// chromedriver on a free loopback port, started for one test and stopped (SIGTERM) after it.
class ChromeDriver {
 public:
  ChromeDriver() {
    int out[2];
    REQUIRE(::pipe(out) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::close(out[0]);
      ::close(out[1]);
      ::execl("/usr/bin/chromedriver", "chromedriver", "--port=0", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(out[1]);
    // "ChromeDriver was started successfully on port 36021." (port 0: it picks one and says which).
    // Kept open until chromedriver has ended: a write into a closed pipe would kill it (SIGPIPE).
    output_ = ::fdopen(out[0], "r");
    REQUIRE(output_ != nullptr);
    char line[512];
    while (port_ == 0 && std::fgets(line, sizeof line, output_) != nullptr) {
      const std::string text(line);
      const std::string marker = "started successfully on port ";
      if (const auto at = text.find(marker); at != std::string::npos) port_ = std::atoi(text.c_str() + at + marker.size());
    }
    REQUIRE(port_ > 0);
  }
  ~ChromeDriver() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    if (output_ != nullptr) std::fclose(output_);
  }
  ChromeDriver(const ChromeDriver&) = delete;
  ChromeDriver& operator=(const ChromeDriver&) = delete;

  /// One WebDriver command: the response's "value".
  json call(const std::string& method, const std::string& path, const json& body = nullptr) const {
    CURL* curl = curl_easy_init();
    REQUIRE(curl != nullptr);
    std::string response;
    const std::string url = "http://127.0.0.1:" + std::to_string(port_) + path;
    const std::string payload = body.is_null() ? std::string() : body.dump();
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    if (method == "POST") curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload.c_str());
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, +[](char* data, std::size_t size, std::size_t n, void* sink) {
      static_cast<std::string*>(sink)->append(data, size * n);
      return size * n;
    });
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 90L);
    const CURLcode code = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    INFO(method << " " << path << ": " << response.substr(0, 2000));
    REQUIRE(code == CURLE_OK);
    REQUIRE(status == 200);
    return json::parse(response).at("value");
  }

 private:
  pid_t pid_ = -1;
  FILE* output_ = nullptr;
  int port_ = 0;
};

std::vector<std::uint8_t> base64_decode(const std::string& text) {
  static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::vector<std::uint8_t> out;
  unsigned int buffer = 0;
  int bits = 0;
  for (const char c : text) {
    const auto at = alphabet.find(c);
    if (at == std::string::npos) continue;  // '=' padding, line breaks
    buffer = buffer << 6 | static_cast<unsigned int>(at);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::uint8_t>(buffer >> bits & 0xFF));
    }
  }
  return out;
}

}  // namespace

TEST_CASE("pixflow --index: the page shows every thumbnail in a real headless Chromium", "[index][browser][slow]") {
  if (!std::filesystem::exists("/usr/bin/chromium") || !std::filesystem::exists("/usr/bin/chromedriver")) {
    WARN("chromium or chromium-driver is not installed (scripts/setup installs them): browser test not run");
    return;
  }
  TempDir dir;
  const auto in = dir / "in";
  const auto out = dir / "out";
  std::filesystem::create_directories(in);
  for (const char* name : {"aqua.jpg", "dune.jpg", "ladybird-alpha.png", "wood.webp", "storm-rotated.jpg", "garden.png"})
    std::filesystem::copy_file(photo(name), in / name);
  // A good photo with a hostile name, a cut one with another, and a file that is no image.
  const std::string shown_name = R"(it's "<b>bold&amp;".jpg)";  // no '/': it is a file name
  std::filesystem::copy_file(photo("tiny.jpg"), in / shown_name);
  const auto aqua = read_bytes(photo("aqua.jpg"));
  const std::string failing_name = R"(bad"<script>alert(1)<script>.jpg)";
  pixflow::test::write_text(in / failing_name, std::string(aqua.begin(), aqua.begin() + 4000));
  pixflow::test::write_text(in / "notes.txt", "not an image");

  const auto report_file = dir / "report.json";
  const std::string command = pixflow::test::cli_path().string() + " thumbs '" + in.string() + "' --out '" + out.string() +
                              "' --index --mode fill --size 160x160 --quiet --report '" + report_file.string() + "'";
  const int status = std::system(command.c_str());
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);  // the cut photo failed
  REQUIRE(std::filesystem::is_regular_file(out / "index.html"));
  const json report = json::parse(text_of(report_file));
  std::vector<std::string> expected_alts;
  // The report's items come as they finished; their index is the input order the page shows.
  std::vector<json> items(report.at("items").begin(), report.at("items").end());
  std::sort(items.begin(), items.end(), [](const json& a, const json& b) { return a.at("index") < b.at("index"); });
  for (const auto& entry : items)
    if (entry.at("status") == "ok") expected_alts.push_back(std::filesystem::path(entry.at("path").get<std::string>()).filename().string());
  REQUIRE(expected_alts.size() == 7);

  ChromeDriver driver;
  const json capabilities = {
      {"capabilities",
       {{"alwaysMatch",
         {{"browserName", "chrome"},
          {"goog:chromeOptions",
           {{"binary", "/usr/bin/chromium"},
            {"args", {"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1000,900"}}}}}}}}};
  const json session = driver.call("POST", "/session", capabilities);
  const std::string id = session.at("sessionId");
  const std::string base = "/session/" + id;
  // Loading waits for the load event: every <img> has loaded or failed by then.
  driver.call("POST", base + "/url", {{"url", "file://" + (out / "index.html").string()}});
  const json page = driver.call("POST", base + "/execute/sync",
                                {{"script", R"(return {
      images: Array.from(document.images).map(i => ({src: i.getAttribute('src'), alt: i.alt, complete: i.complete,
                                                      width: i.naturalWidth, height: i.naturalHeight})),
      scripts: document.getElementsByTagName('script').length,
      bold: document.getElementsByTagName('b').length,
      title: document.title,
      text: document.body.innerText})"},
                                 {"args", json::array()}});
  const json screenshot = driver.call("GET", base + "/screenshot");
  driver.call("DELETE", base);

  INFO(page.dump(2));
  CHECK(page.at("scripts") == 0);
  CHECK(page.at("bold") == 0);  // the hostile name's <b> is text, not markup
  CHECK(page.at("title") == "pixflow");
  const json& images = page.at("images");
  REQUIRE(images.size() == expected_alts.size());
  for (std::size_t i = 0; i < images.size(); ++i) {
    INFO(images[i].dump());
    CHECK(images[i].at("complete") == true);
    CHECK(images[i].at("width").get<int>() > 0);   // loaded and decoded by the browser
    CHECK(images[i].at("height").get<int>() > 0);
    CHECK(images[i].at("alt") == expected_alts[i]);  // input order
  }
  const std::string text = page.at("text");
  CHECK(text.find(failing_name) != std::string::npos);  // shown literally, with its reason
  CHECK(text.find("truncated jpeg") != std::string::npos);
  CHECK(text.find("notes.txt") != std::string::npos);
  CHECK(text.find(shown_name) != std::string::npos);

  // The screenshot shows something: not one colour.
  const auto png = base64_decode(screenshot.get<std::string>());
  const cv::Mat shot = cv::imdecode(png, cv::IMREAD_COLOR);
  REQUIRE_FALSE(shot.empty());
  cv::Scalar mean;
  cv::Scalar deviation;
  cv::meanStdDev(shot, mean, deviation);
  INFO("screenshot " << shot.cols << "x" << shot.rows << ", mean " << mean << ", deviation " << deviation);
  CHECK(deviation[0] + deviation[1] + deviation[2] > 30.0);
  std::set<std::uint32_t> colours;
  for (int y = 0; y < shot.rows; y += 2)
    for (int x = 0; x < shot.cols; x += 2) {
      const cv::Vec3b p = shot.at<cv::Vec3b>(y, x);
      colours.insert(std::uint32_t{p[0]} << 16 | std::uint32_t{p[1]} << 8 | p[2]);
    }
  CHECK(colours.size() > 1000);  // photographs, not a flat page
}

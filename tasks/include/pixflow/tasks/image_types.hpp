#pragma once
/// @file
/// The small vocabulary shared by the image tasks: a box Size, an ImageFormat and a ThumbnailMode.
///
/// @code
/// using namespace pixflow::tasks;
/// auto box = parse_size("128x96");            // Size{128, 96}
/// auto fmt = parse_format("webp");            // ImageFormat::webp
/// auto mode = parse_mode("fill");             // ThumbnailMode::fill
/// std::string ext = extension_of(*fmt);       // ".webp"
/// @endcode
#include <optional>
#include <string>
#include <string_view>

namespace pixflow::tasks {

/// A width x height in pixels; as a thumbnail box, the image is fitted inside it.
struct Size {
  int width = 0;
  int height = 0;
  friend constexpr bool operator==(Size, Size) noexcept = default;
};

/// "WxH" with both > 0 (e.g. "128x128"); std::nullopt otherwise.
std::optional<Size> parse_size(std::string_view text);
/// "128x128".
std::string to_string(Size size);

/// Image formats pixflow knows by their magic bytes. `same` is only meaningful as an output choice
/// ("encode as the source's format"). `mp4` (ISO base media: MP4, MOV, 3GP, told by their `ftyp` box;
/// not HEIF/AVIF stills) and `webm` (an EBML header with DocType "webm") are videos: decode_image
/// refuses them, decode_video_poster (video.hpp) reads them.
enum class ImageFormat { jpeg, png, webp, gif, bmp, tiff, unknown, same, mp4, webm };

/// How an item is to be treated, whatever its container: a `still` image, an `animated` one (a GIF
/// of two frames or more, an animated WebP) or a `video`. Told by the bytes (media_kind in decode.hpp)
/// or, before the download, by a listing (ListedImage::kind in imgur.hpp).
enum class MediaKind { still, animated, video };

/// "still", "animated", "video".
std::string_view name_of(MediaKind kind);

/// How a thumbnail meets its box: `fit` inside it, the aspect ratio kept (one side equals the box, the
/// other is shorter); `fill` exactly the box, the image scaled to cover it and cropped around its centre;
/// `fill_attention` ("fill-attention") the same size, cropped where the image draws the eye (edges, skin
/// tones, saturated colours: make_thumbnail in thumbnail.hpp). None ever upscales.
enum class ThumbnailMode { fit, fill, fill_attention };

/// True for the modes that fill the box (and so decode enough pixels to cover it).
constexpr bool fills_box(ThumbnailMode mode) { return mode != ThumbnailMode::fit; }

/// "fit", "fill" or "fill-attention"; std::nullopt otherwise.
std::optional<ThumbnailMode> parse_mode(std::string_view text);
/// "fit" or "fill".
std::string_view name_of(ThumbnailMode mode);

/// "same", "jpg"/"jpeg", "png", "webp" (the output formats); std::nullopt otherwise.
std::optional<ImageFormat> parse_format(std::string_view text);
/// Lower-case name: "jpeg", "png", "webp", "gif", "bmp", "tiff", "mp4", "webm", "unknown", "same".
std::string_view name_of(ImageFormat format);
/// File extension with the dot: ".jpg", ".png", ".webp", ".gif", ".bmp", ".tif", ".mp4", ".webm"; "" for
/// unknown/same.
std::string_view extension_of(ImageFormat format);
/// The format a file name's extension says, ASCII case ignored: ".jpg"/".jpeg", ".png", ".webp",
/// ".gif", ".bmp", ".tif"/".tiff", ".mp4"/".mov"/".m4v" (mp4), ".webm"; unknown for anything else. A name, not the bytes: what outputs are
/// planned from before anything is downloaded (decode.hpp's sniff_format tells the bytes).
ImageFormat format_of_name(std::string_view file_name);

}  // namespace pixflow::tasks

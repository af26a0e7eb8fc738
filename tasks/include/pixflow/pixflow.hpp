#pragma once
/// @file
/// Everything an application needs to embed pixflow, in one include: the generic engine (Graph, Stream,
/// Input, Executor, Result, Concurrency, RunReport, interrupts) and the image pipeline (run_pipeline, its sources,
/// config, custom stages and report), and tune_malloc_for_images for your main.
///
/// @code
/// #include <pixflow/pixflow.hpp>
///
/// pixflow::tasks::PipelineOptions options;
/// options.out = "thumbs";
/// options.config = pixflow::tasks::load_config("pixflow.json");   // throws ConfigError naming the path
/// auto report = pixflow::tasks::run_pipeline(pixflow::tasks::FolderSource{"photos"}, options);
/// std::cout << report.count(pixflow::tasks::ItemStatus::ok) << " thumbnails\n";
/// @endcode
#include "pixflow/engine/cancel.hpp"
#include "pixflow/engine/concurrency.hpp"
#include "pixflow/engine/executor.hpp"
#include "pixflow/engine/graph.hpp"
#include "pixflow/engine/result.hpp"
#include "pixflow/engine/stats.hpp"
#include "pixflow/tasks/allocator.hpp"
#include "pixflow/tasks/config.hpp"
#include "pixflow/tasks/pipeline.hpp"
#include "pixflow/tasks/report.hpp"

// Outputs appear whole or not at all, also when the process is killed mid-write.
#include "support/atomic_file.h"
#include "support/error.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>

#include <sys/wait.h>
#include <unistd.h>

using namespace switchyard;

TEST(AtomicFile, CommitMovesIntoPlaceAndFailureLeavesNothing) {
    test::ScratchDir dir;
    write_file_atomically(dir.file("a.txt"), "hello");
    EXPECT_EQ(test::read_file(dir.file("a.txt")), "hello");
    {
        AtomicFile f(dir.file("b.txt"));
        std::ofstream(f.temp_path()) << "half";
    }  // destroyed without commit, as when a writer throws
    EXPECT_FALSE(std::filesystem::exists(dir.file("b.txt")));
    EXPECT_THROW(write_file_atomically(dir.file("missing-folder") / "c.txt", "x"), Error);
    std::size_t entries = 0;
    for ([[maybe_unused]] const auto & e : std::filesystem::directory_iterator(dir.path())) ++entries;
    EXPECT_EQ(entries, 1u);
}

TEST(AtomicFile, KilledWriterLeavesNoTemporaryFile) {
    test::ScratchDir dir;
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        AtomicFile f(dir.file("model.gguf"));
        std::ofstream(f.temp_path()) << "partial tensor data";
        std::raise(SIGTERM);  // as `kill` would, mid-write
        ::_exit(0);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));
    EXPECT_EQ(WTERMSIG(status), SIGTERM);
    EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "neither the target nor its temporary file may remain";
}

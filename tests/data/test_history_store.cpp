#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>

#include "longrec/core/error.h"
#include "longrec/data/history_store.h"
#include "support/test_support.h"

namespace longrec::data {

namespace {

struct User {
  std::int64_t id;
  std::vector<std::int32_t> items;
  std::vector<std::int64_t> times;
};

std::vector<User> sample_users() {
  std::vector<User> users;
  for (std::int64_t u = 1; u <= 40; ++u) {
    User user{u * 7, {}, {}};
    for (std::int64_t t = 0; t < u % 9 + 1; ++t) {
      user.items.push_back(static_cast<std::int32_t>((u * 31 + t * 7) % 20 + 1));
      user.times.push_back(1000 * u + t);
    }
    users.push_back(user);
  }
  return users;
}

std::filesystem::path write_store(const std::filesystem::path& target, const std::vector<User>& users, int parts = 3) {
  HistoryStoreWriter writer(target, {parts, false, false});
  for (const auto& u : users) writer.add_user(u.id, u.items, u.times);
  std::vector<std::int64_t> raw(20), counts(20, 1);
  for (int i = 0; i < 20; ++i) raw[i] = 100 + i;
  std::vector<std::string> text(20);
  for (int i = 0; i < 20; ++i) text[i] = "item \xC3\xA9 " + std::to_string(i);
  writer.set_items(raw, counts, text);
  StoreMeta description;
  description.item_order = "first";
  description.source = "test";
  writer.commit(description);
  return target;
}

std::string open_error(const std::filesystem::path& dir) {
  try {
    HistoryStoreReader reader(dir);
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(HistoryStore, RoundTripKeepsEveryUserAndEvent) {
  testing::ScratchDir dir;
  const auto users = sample_users();
  const auto store_dir = write_store(dir / "store", users);
  const HistoryStoreReader store(store_dir);
  EXPECT_EQ(store.meta().num_users, 40);
  EXPECT_EQ(store.meta().num_items, 20);
  EXPECT_EQ(store.num_parts(), 3);
  EXPECT_EQ(store.item_text()[3], "item \xC3\xA9 3");
  std::int64_t events = 0;
  std::map<std::int64_t, User> read;
  for (int p = 0; p < store.num_parts(); ++p) {
    const auto ids = store.part_user_ids(p);
    const auto offsets = store.part_offsets(p);
    for (std::size_t u = 0; u < ids.size(); ++u) {
      EXPECT_EQ(part_of_user(ids[u], 3), p);
      User user{ids[u], std::vector<std::int32_t>(offsets[u + 1] - offsets[u]), {}};
      user.times.resize(user.items.size());
      store.read_events(p, offsets[u], offsets[u + 1], user.items.data(), user.times.data());
      read[ids[u]] = user;
      events += static_cast<std::int64_t>(user.items.size());
    }
  }
  EXPECT_EQ(events, store.meta().num_events);
  ASSERT_EQ(read.size(), users.size());
  for (const auto& u : users) {
    EXPECT_EQ(read[u.id].items, u.items);
    EXPECT_EQ(read[u.id].times, u.times);
  }
  EXPECT_EQ(store.meta().min_time, 1000);
  EXPECT_EQ(store.meta().max_time, 40 * 1000 + 4);
}

TEST(HistoryStore, UncommittedWriterLeavesNothing) {
  testing::ScratchDir dir;
  {
    HistoryStoreWriter writer(dir / "store", {2, false, false});
    const std::vector<std::int32_t> items{1, 2};
    const std::vector<std::int64_t> times{1, 2};
    writer.add_user(1, items, times);
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(HistoryStore, CrashBeforeCommitLeavesNoDatasetUnderTheTargetName) {
  testing::ScratchDir dir;
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    HistoryStoreWriter writer(dir / "store", {2, false, false});
    const std::vector<std::int32_t> items{1, 2};
    const std::vector<std::int64_t> times{1, 2};
    writer.add_user(1, items, times);
    _exit(3);  // dies without commit or destructors, like a killed process
  }
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_FALSE(std::filesystem::exists(dir / "store"));
  EXPECT_NE(open_error(dir / "store").find("dataset directory not found"), std::string::npos);
  // The dead writer's temporary directory is there until the next writer for
  // the same target removes it; that writer builds and commits normally.
  const auto stale = dir / (".store.tmp-" + std::to_string(child));
  EXPECT_TRUE(std::filesystem::exists(stale));
  write_store(dir / "store", sample_users());
  EXPECT_FALSE(std::filesystem::exists(stale));
  EXPECT_EQ(HistoryStoreReader(dir / "store").meta().num_users, 40);
}

TEST(HistoryStore, TruncatedPartFileIsNamed) {
  testing::ScratchDir dir;
  const auto store_dir = write_store(dir / "store", sample_users());
  const auto part = store_dir / "part-00001.h5";
  std::filesystem::resize_file(part, std::filesystem::file_size(part) / 2);
  const auto error = open_error(store_dir);
  EXPECT_NE(error.find("part-00001.h5"), std::string::npos) << error;
  EXPECT_NE(error.find("longrec prepare"), std::string::npos) << error;
}

TEST(HistoryStore, GarbageMetaFileIsNamed) {
  testing::ScratchDir dir;
  const auto store_dir = write_store(dir / "store", sample_users());
  testing::write_file(store_dir / "meta.h5", "this is not HDF5 at all");
  const auto error = open_error(store_dir);
  EXPECT_NE(error.find("meta.h5: not a readable HDF5 file"), std::string::npos) << error;
}

TEST(HistoryStore, MissingPartFileIsNamed) {
  testing::ScratchDir dir;
  const auto store_dir = write_store(dir / "store", sample_users());
  std::filesystem::remove(store_dir / "part-00002.h5");
  EXPECT_NE(open_error(store_dir).find("part-00002.h5: file not found"), std::string::npos);
}

TEST(HistoryStore, ForeignHdf5FileIsRefused) {
  testing::ScratchDir dir;
  std::filesystem::create_directories(dir / "foreign");
  const hid_t file = H5Fcreate((dir / "foreign" / "meta.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  ASSERT_GE(H5Fclose(file), 0);
  const auto error = open_error(dir / "foreign");
  EXPECT_NE(error.find("not a longrec history store"), std::string::npos) << error;
}

namespace {
void overwrite_int_attribute(const std::filesystem::path& file, const char* name, std::int64_t value) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  const hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  ASSERT_GE(a, 0);
  ASSERT_GE(H5Awrite(a, H5T_NATIVE_INT64, &value), 0);
  H5Aclose(a);
  H5Fclose(f);
}
}  // namespace

TEST(HistoryStore, WrongVersionIsRefusedWithAHint) {
  testing::ScratchDir dir;
  const auto store_dir = write_store(dir / "store", sample_users());
  overwrite_int_attribute(store_dir / "meta.h5", "version", 99);
  const auto error = open_error(store_dir);
  EXPECT_NE(error.find("version 99, this build reads version 1"), std::string::npos) << error;
  EXPECT_NE(error.find("re-run `longrec prepare`"), std::string::npos) << error;
}

TEST(HistoryStore, InconsistentCountsAreRefused) {
  testing::ScratchDir dir;
  const auto store_dir = write_store(dir / "store", sample_users());
  overwrite_int_attribute(store_dir / "meta.h5", "num_events", 12345);
  const auto error = open_error(store_dir);
  EXPECT_NE(error.find("meta.h5 says"), std::string::npos) << error;
}

TEST(HistoryStore, OutOfRangeItemIdIsReportedAtRead) {
  testing::ScratchDir dir;
  auto users = sample_users();
  users[0].items[0] = 21;  // only 20 items
  const auto store_dir = write_store(dir / "store", users);
  const HistoryStoreReader store(store_dir);
  const int part = part_of_user(users[0].id, 3);
  const auto offsets = store.part_offsets(part);
  std::vector<std::int32_t> items(static_cast<std::size_t>(offsets.back()));
  std::vector<std::int64_t> times(items.size());
  try {
    store.read_events(part, 0, offsets.back(), items.data(), times.data());
    FAIL() << "expected an out-of-range item id to be refused";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("/events/item"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("item id 21, outside 1..20"), std::string::npos) << e.what();
  }
}

}  // namespace longrec::data

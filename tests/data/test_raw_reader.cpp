#include <gtest/gtest.h>

#include "longrec/core/error.h"
#include "longrec/data/raw_reader.h"
#include "support/test_support.h"

namespace longrec::data {

namespace {

std::string read_error(const std::filesystem::path& path, RawReadOptions options = {}) {
  try {
    read_interactions(path, options);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(RawReader, SeqFormatGivesOrdinalTimes) {
  testing::ScratchDir dir;
  const auto f = testing::write_file(dir / "seq.txt", "1 10 11 12\n2 11\r\n\n3 12 10\n");
  const auto raw = read_interactions(f, {});
  EXPECT_EQ(raw.format, RawFormat::Seq);
  EXPECT_TRUE(raw.time_is_ordinal);
  EXPECT_EQ(raw.lines, 3);
  EXPECT_EQ(raw.users, (std::vector<std::int64_t>{1, 1, 1, 2, 3, 3}));
  EXPECT_EQ(raw.items, (std::vector<std::int64_t>{10, 11, 12, 11, 12, 10}));
  EXPECT_EQ(raw.times, (std::vector<std::int64_t>{0, 1, 2, 0, 0, 1}));
}

TEST(RawReader, MovielensDat) {
  testing::ScratchDir dir;
  const auto f = testing::write_file(dir / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n");
  const auto raw = read_interactions(f, {});
  EXPECT_EQ(raw.format, RawFormat::MovielensDat);
  EXPECT_FALSE(raw.time_is_ordinal);
  EXPECT_TRUE(raw.has_ratings);
  EXPECT_EQ(raw.items, (std::vector<std::int64_t>{1193, 661}));
  EXPECT_EQ(raw.times, (std::vector<std::int64_t>{978300760, 978302109}));
  EXPECT_EQ(raw.ratings, (std::vector<float>{5, 3}));
}

TEST(RawReader, CsvWithHeaderMapsColumnsByNameAndHandlesQuotes) {
  testing::ScratchDir dir;
  const auto f = testing::write_file(dir / "log.csv", "ts,\"note, quoted\",uid,iid\n5,\"a,b\",7,70\n3,x,7,71\n");
  RawReadOptions options;
  options.user_column = "uid";
  options.item_column = "iid";
  options.time_column = "ts";
  const auto raw = read_interactions(f, options);
  EXPECT_EQ(raw.format, RawFormat::Csv);
  EXPECT_EQ(raw.users, (std::vector<std::int64_t>{7, 7}));
  EXPECT_EQ(raw.items, (std::vector<std::int64_t>{70, 71}));
  EXPECT_EQ(raw.times, (std::vector<std::int64_t>{5, 3}));
  EXPECT_FALSE(raw.has_ratings);
}

TEST(RawReader, CsvDetectsCommonColumnNames) {
  testing::ScratchDir dir;
  const auto f = testing::write_file(dir / "ratings.csv", "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n");
  const auto raw = read_interactions(f, {});
  EXPECT_EQ(raw.items, (std::vector<std::int64_t>{31}));
  EXPECT_EQ(raw.ratings, (std::vector<float>{2.5f}));
  EXPECT_EQ(raw.times, (std::vector<std::int64_t>{1260759144}));
}

TEST(RawReader, TsvWithoutHeaderUsesUDataOrder) {
  testing::ScratchDir dir;
  const auto f = testing::write_file(dir / "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n");
  const auto raw = read_interactions(f, {});
  EXPECT_EQ(raw.format, RawFormat::Tsv);
  EXPECT_EQ(raw.users, (std::vector<std::int64_t>{196, 186}));
  EXPECT_EQ(raw.items, (std::vector<std::int64_t>{242, 302}));
  EXPECT_EQ(raw.times, (std::vector<std::int64_t>{881250949, 891717742}));
}

TEST(RawReader, MalformedLineNamesFileAndLine) {
  testing::ScratchDir dir;
  const auto f = testing::write_file(dir / "r.dat", "1::2::3::4\n1::2::3\n");
  const auto error = read_error(f);
  EXPECT_NE(error.find("r.dat:2: expected 4 fields"), std::string::npos) << error;
}

TEST(RawReader, NonNumericIdIsNamed) {
  testing::ScratchDir dir;
  const auto f = testing::write_file(dir / "s.txt", "1 2 3\n2 4 abc 5\n");
  const auto error = read_error(f);
  EXPECT_NE(error.find("s.txt:2: item id 'abc' (field 3) is not an integer"), std::string::npos) << error;
}

TEST(RawReader, SkipBadLinesCountsAndReports) {
  testing::ScratchDir dir;
  const auto f = testing::write_file(dir / "s.txt", "1 2 3\n2 x\n3\n4 5 6\n");
  RawReadOptions options;
  options.skip_bad_lines = true;
  const auto raw = read_interactions(f, options);
  EXPECT_EQ(raw.bad_lines, 2);
  EXPECT_EQ(raw.lines, 4);
  ASSERT_EQ(raw.bad_line_examples.size(), 2u);
  EXPECT_NE(raw.bad_line_examples[0].find("s.txt:2"), std::string::npos);
  EXPECT_NE(raw.bad_line_examples[1].find("s.txt:3"), std::string::npos);
  EXPECT_EQ(raw.users, (std::vector<std::int64_t>{1, 1, 4, 4}));  // nothing of a bad line is kept
}

TEST(RawReader, EmptyFileIsNamed) {
  testing::ScratchDir dir;
  const auto f = testing::write_file(dir / "empty.txt", "");
  EXPECT_NE(read_error(f).find("empty.txt: the file is empty"), std::string::npos);
}

TEST(RawReader, MissingColumnIsNamedWithTheHeader) {
  testing::ScratchDir dir;
  const auto f = testing::write_file(dir / "x.csv", "user,thing\n1,2\n");
  const auto error = read_error(f);
  EXPECT_NE(error.find("x.csv:1: header has no item column"), std::string::npos) << error;
  EXPECT_NE(error.find("user, thing"), std::string::npos) << error;
  RawReadOptions options;
  options.item_column = "product";
  const auto error2 = read_error(f, options);
  EXPECT_NE(error2.find("no column 'product'"), std::string::npos) << error2;
}

TEST(RawReader, WrongColumnCountOnALine) {
  testing::ScratchDir dir;
  const auto f = testing::write_file(dir / "x.csv", "user,item,time\n1,2,3\n1,2\n");
  EXPECT_NE(read_error(f).find("x.csv:3: expected 3 columns, got 2"), std::string::npos);
}

TEST(RawReader, Utf16AndBinaryFilesAreNamed) {
  testing::ScratchDir dir;
  const auto utf16 = testing::write_file(dir / "u16.txt", std::string("\xFF\xFE"
                                                                      "1\0 \0"
                                                                      "2\0",
                                                                      8));
  EXPECT_NE(read_error(utf16).find("UTF-16"), std::string::npos);
  const auto binary = testing::write_file(dir / "bin.txt", std::string("1 2\n3 \0 4\n", 10));
  RawReadOptions seq;
  seq.format = "seq";
  EXPECT_NE(read_error(binary, seq).find("bin.txt:2: NUL byte"), std::string::npos);
}

TEST(ItemText, MoviesDatLatin1IsDecodedToUtf8) {
  testing::ScratchDir dir;
  const auto f = testing::write_file(dir / "movies.dat",
                                     "1::Toy Story (1995)::Animation|Comedy\n"
                                     "2::Les Mis\xE9rables (1995)::Drama\n");
  const auto text = read_item_text(f);
  EXPECT_EQ(text.encoding, "latin-1");
  ASSERT_EQ(text.texts.size(), 2u);
  EXPECT_EQ(text.texts[0], "Toy Story (1995) | Animation|Comedy");
  EXPECT_EQ(text.texts[1], "Les Mis\xC3\xA9rables (1995) | Drama");
  try {
    read_item_text(f, "utf-8");
    FAIL() << "expected invalid UTF-8 to be refused";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("movies.dat:2: invalid UTF-8"), std::string::npos) << e.what();
  }
}

TEST(ItemText, QuotedCsvAndUItem) {
  testing::ScratchDir dir;
  const auto csv = testing::write_file(dir / "movies.csv",
                                       "movieId,title,genres\n11,\"American President, The (1995)\",Comedy|Drama\n");
  const auto text = read_item_text(csv);
  ASSERT_EQ(text.raw_ids, (std::vector<std::int64_t>{11}));
  EXPECT_EQ(text.texts[0], "American President, The (1995) | Comedy|Drama");
  const auto uitem = testing::write_file(dir / "u.item", "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|1\n");
  const auto t2 = read_item_text(uitem);
  EXPECT_EQ(t2.texts[0], "Toy Story (1995)");
}

// Found by tests/fuzz/fuzz_raw_log: an unterminated quote on the first line
// escaped the header probe and ended the process in std::terminate.
TEST(ItemText, AnUnterminatedQuoteOnTheFirstLineIsRefusedWithItsLine) {
  testing::ScratchDir dir;
  const auto csv = testing::write_file(dir / "movies.csv", "movieId,title,genres,\"\n To Story, The (1995)\",Comedy\n");
  try {
    (void)read_item_text(csv);
    FAIL() << "accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("movies.csv:1: unterminated quoted field"), std::string::npos) << e.what();
  }
  EXPECT_THROW(split_delimited("a,\"b", ','), DataError);  // public: a refusal, not an internal type
}

TEST(RawReader, NonFiniteRatingsAreRefusedWithFileAndLine) {
  testing::ScratchDir dir;
  const auto csv = testing::write_file(dir / "r.csv", "userId,movieId,rating,timestamp\n1,10,4.0,5\n1,11,nan,6\n");
  auto error = read_error(csv);
  EXPECT_NE(error.find("r.csv:3: rating 'nan' (field 3) is not a finite number"), std::string::npos) << error;
  const auto dat = testing::write_file(dir / "ratings.dat", "1::10::4::5\n1::11::inf::6\n2::12::-Infinity::7\n");
  error = read_error(dat);
  EXPECT_NE(error.find("ratings.dat:2: rating 'inf' (field 3) is not a finite number"), std::string::npos) << error;
  // Finite as a double, infinite as the float the store keeps.
  const auto tsv = testing::write_file(dir / "u.data", "1\t10\t1e39\t5\n");
  error = read_error(tsv);
  EXPECT_NE(error.find("u.data:1: rating '1e39' (field 3) is not a finite number"), std::string::npos) << error;
  // With --skip-bad-lines they are counted like any other bad line.
  RawReadOptions skip;
  skip.skip_bad_lines = true;
  const auto raw = read_interactions(dat, skip);
  EXPECT_EQ(raw.bad_lines, 2);
  EXPECT_EQ(raw.ratings, (std::vector<float>{4}));
}

TEST(RawReader, TabSeparatedSeqFileIsGuessedAsSeq) {
  testing::ScratchDir dir;
  const auto f = testing::write_file(dir / "seq.txt", "1\t10\t11\t12\n2\t11\n3\t12\t10\n");
  const auto raw = read_interactions(f, {});
  EXPECT_EQ(raw.format, RawFormat::Seq);
  EXPECT_EQ(raw.items, (std::vector<std::int64_t>{10, 11, 12, 11, 12, 10}));
  EXPECT_NE(raw.format_guess.find("tab-separated integers, a varying number per line"), std::string::npos)
      << raw.format_guess;
}

// Issue 18, item 1: one `user item [time]` event per line (SASRec's Video.txt,
// JODIE's wikipedia.txt) was read as seq, every event at time 0.
TEST(RawReader, PairsOneEventPerLineAreGuessedAndReadInFileOrder) {
  testing::ScratchDir dir;
  const auto f = testing::write_file(dir / "Video.txt", "1 10\n1 11\n2 10\n1 12\n2 13\n");
  const auto raw = read_interactions(f, {});
  EXPECT_EQ(raw.format, RawFormat::Pairs);
  EXPECT_NE(raw.format_guess.find("2 space-separated integers per line from line 1, user ids on several lines"),
            std::string::npos)
      << raw.format_guess;
  EXPECT_TRUE(raw.time_is_ordinal);
  EXPECT_EQ(raw.users, (std::vector<std::int64_t>{1, 1, 2, 1, 2}));
  EXPECT_EQ(raw.items, (std::vector<std::int64_t>{10, 11, 10, 12, 13}));
  EXPECT_EQ(raw.times, (std::vector<std::int64_t>{0, 1, 2, 3, 4}));  // the file's order

  const auto timed = read_interactions(testing::write_file(dir / "w.txt", "7 3 1500\n8 3 1400\n7 4 1600\n"), {});
  EXPECT_EQ(timed.format, RawFormat::Pairs);
  EXPECT_FALSE(timed.time_is_ordinal);
  EXPECT_EQ(timed.times, (std::vector<std::int64_t>{1500, 1400, 1600}));

  // No user on two lines: one user per line, as seq has always been read.
  EXPECT_EQ(read_interactions(testing::write_file(dir / "s.txt", "1 10\n2 11\n3 12\n"), {}).format, RawFormat::Seq);
  // A line with another number of fields is refused by line.
  RawReadOptions pairs;
  pairs.format = "pairs";
  const auto bad = testing::write_file(dir / "bad.txt", "1 10\n1 11 5\n");
  EXPECT_NE(read_error(bad, pairs).find("bad.txt:2: expected 2 fields ('user item') as on the first line, got 3"),
            std::string::npos)
      << read_error(bad, pairs);
  EXPECT_NE(read_error(testing::write_file(dir / "one.txt", "1\n"), pairs)
                .find("one.txt:1: expected 'user item' or 'user item time', got 1 field(s)"),
            std::string::npos);
  EXPECT_EQ(parse_format_name("pairs"), RawFormat::Pairs);
}

TEST(RawReader, AnErrorAfterAGuessSaysWhichFormatWasGuessedAndHowToChoose) {
  testing::ScratchDir dir;
  // Tab-separated with a rating: TSV from line 1; line 2 is short.
  const auto f = testing::write_file(dir / "log.txt", "1\t10\t4.5\t100\n2\t11\n");
  const auto error = read_error(f);
  EXPECT_NE(error.find("log.txt:2: expected 4 columns, got 2"), std::string::npos) << error;
  EXPECT_NE(error.find("[read as tsv, the format guessed from a tab on line 1; if it is another, pass --format "
                       "seq|pairs|movielens-dat|csv]"),
            std::string::npos)
      << error;
  // A format given is not a guess: no such note.
  RawReadOptions tsv;
  tsv.format = "tsv";
  EXPECT_EQ(read_error(f, tsv).find("guessed"), std::string::npos);
}

}  // namespace longrec::data

namespace longrec::data {

// Issue 15: which item-text fields, in which order, in HLLM's "key: value" form.
TEST(ItemText, FieldsAreNamedAndComposedInTheChosenOrderAndStyle) {
  testing::ScratchDir dir;
  const auto dat = testing::write_file(dir / "movies.dat",
                                       "1::Toy Story (1995)::Animation|Children's|Comedy\n2::Jumanji (1995)::\n");
  const auto text = read_item_text(dat);
  EXPECT_EQ(text.field_names, (std::vector<std::string>{"title", "genres"}));
  EXPECT_EQ(text.texts[0], "Toy Story (1995) | Animation|Children's|Comedy");  // the default is unchanged
  EXPECT_EQ(compose_item_texts(text, {}, "plain"),
            (std::vector<std::string>{"Toy Story (1995) | Animation|Children's|Comedy", "Jumanji (1995)"}));
  EXPECT_EQ(compose_item_texts(text, {"genres", "title"}, "key_value"),
            (std::vector<std::string>{"genres: Animation|Children's|Comedy, title: Toy Story (1995)",
                                      "title: Jumanji (1995)"}));  // an empty value is left out
  EXPECT_EQ(compose_item_texts(text, {"title"}, "plain"),
            (std::vector<std::string>{"Toy Story (1995)", "Jumanji (1995)"}));
  try {
    (void)compose_item_texts(text, {"title", "plot"}, "plain");
    FAIL() << "accepted an unknown field";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "prepare.text_fields");
    EXPECT_NE(std::string(e.what()).find("unknown item text field 'plot'; the item file has: title, genres"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(compose_item_texts(text, {}, "markdown"), ConfigError);
  const auto csv = testing::write_file(dir / "items.csv", "item_id,title,brand,description\n7,Lipstick,Acme,Red\n");
  const auto c = read_item_text(csv);
  EXPECT_EQ(c.field_names, (std::vector<std::string>{"title", "brand", "description"}));
  EXPECT_EQ(compose_item_texts(c, {"brand", "title"}, "key_value"),
            (std::vector<std::string>{"brand: Acme, title: Lipstick"}));
  const auto bare = testing::write_file(dir / "bare.csv", "7,Lipstick,Acme\n");
  EXPECT_EQ(read_item_text(bare).field_names, (std::vector<std::string>{"column2", "column3"}));
}

}  // namespace longrec::data

// Untrusted request text and user ids (torch-free; also run under
// AddressSanitizer + UndefinedBehaviorSanitizer by scripts/check_sanitizers.sh).
#include <gtest/gtest.h>

#include <string>

#include "longrec/core/error.h"
#include "longrec/serve/request.h"

namespace longrec::serve {
namespace {

std::string refusal(const std::string& text) {
  try {
    (void)parse_object(text);
  } catch (const DataError& e) {
    return e.what();
  }
  return "(accepted)";
}

TEST(Request, ParsesAnObjectAndReadsItsFields) {
  const auto j = parse_object(R"({"history": [3, 1, 2], "k": 5, "exclude_seen": false})");
  EXPECT_EQ(int_list(j, "history", true), (std::vector<std::int64_t>{3, 1, 2}));
  EXPECT_TRUE(int_list(j, "times", false).empty());
  EXPECT_EQ(int_field(j, "k", 10), 5);
  EXPECT_EQ(int_field(j, "request_time", -1), -1);
  EXPECT_FALSE(bool_field(j, "exclude_seen", true));
}

TEST(Request, NestingPastTheBoundIsRefusedWithoutRecursion) {
  // 200 KB of brackets: the size that overflowed the stack of `longrec serve`.
  const std::string deep = R"({"history": )" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_NE(refusal(deep).find("\"history\"[0][0]"), std::string::npos) << refusal(deep);
  EXPECT_NE(refusal(deep).find("nested deeper than 16 levels"), std::string::npos);
  std::string objects;
  for (int i = 0; i < 50000; ++i) objects += R"({"a":)";
  EXPECT_NE(refusal(objects).find("nested deeper than 16 levels"), std::string::npos) << refusal(objects);
  // Exactly the bound is accepted (the object itself is level 1).
  const std::string at_bound =
      R"({"a": )" + std::string(kMaxRequestDepth - 1, '[') + std::string(kMaxRequestDepth - 1, ']') + "}";
  EXPECT_NO_THROW(parse_object(at_bound));
  const std::string past = R"({"a": )" + std::string(kMaxRequestDepth, '[') + std::string(kMaxRequestDepth, ']') + "}";
  EXPECT_NE(refusal(past).find("nested deeper"), std::string::npos);
}

TEST(Request, ANumberOutOfRangeNamesItsKey) {
  EXPECT_EQ(refusal(R"({"k": 1e999})"), "\"k\": the number 1e999 is out of range (a finite number is expected)");
  EXPECT_EQ(refusal(R"({"history": [1, 2, -1e400]})"),
            "\"history\"[2]: the number -1e400 is out of range (a finite number is expected)");
  EXPECT_EQ(refusal(R"({"a": {"b": [0, {"c": 1e999}]}})"),
            "\"a\".\"b\"[1].\"c\": the number 1e999 is out of range (a finite number is expected)");
  // Integers past int64 parse (as unsigned or float) and are refused by the field reader, naming the key.
  const auto big = parse_object(R"({"k": 99999999999999999999999})");
  EXPECT_THROW(int_field(big, "k", 1), DataError);
}

TEST(Request, MalformedTextAndOtherTopLevelsAreRefused) {
  EXPECT_NE(refusal(R"({"history": [)").find("malformed JSON at byte"), std::string::npos);
  EXPECT_EQ(refusal("[1, 2]"), "a JSON object is expected, got array");
  EXPECT_NE(refusal("").find("malformed JSON"), std::string::npos);
  EXPECT_NE(refusal(std::string("{\"a\":\"\xff\"}")).find("malformed JSON"), std::string::npos);
}

TEST(Request, FieldErrorsQuoteAShortValue) {
  const auto j = parse_object(R"({"history": [1, [2, 3]], "k": "ten", "flag": [1, 2, 3]})");
  try {
    (void)int_list(j, "history", true);
    FAIL() << "accepted";
  } catch (const DataError& e) {
    EXPECT_STREQ(e.what(), "\"history\"[1] must be an integer, got a list of 2 values");
  }
  EXPECT_THROW(int_field(j, "k", 1), DataError);
  EXPECT_THROW(bool_field(j, "flag", true), DataError);
  EXPECT_EQ(quote_value(nlohmann::json(std::string(500, 'x'))).size(), 83u);
}

TEST(Request, UserIdsWithControlCharactersAreRefused) {
  EXPECT_NO_THROW(check_user_id("alice-42", 256));
  EXPECT_NO_THROW(check_user_id("d\xc3\xa9j\xc3\xa0", 256));  // UTF-8
  for (const std::string& bad : {std::string("a\0b", 3), std::string("a\nb"), std::string("a\x7f"), std::string("\t"),
                                 std::string("\x1b[31m")}) {
    try {
      check_user_id(bad, 256);
      FAIL() << "accepted a control character";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find("control character"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(check_user_id("", 256), DataError);
  EXPECT_THROW(check_user_id(std::string(257, 'u'), 256), DataError);
  EXPECT_THROW(check_user_id("\xff\xfe", 256), DataError);
}

TEST(Request, ANewItemNeedsAnIntegerIdAndAStringText) {
  const auto item = new_item_request(parse_object(R"({"id": 4001, "text": "title: Heat, genres: Action"})"));
  EXPECT_EQ(item.id, 4001);
  EXPECT_EQ(item.text, "title: Heat, genres: Action");
  EXPECT_EQ(new_item_request(parse_object(R"({"id": 1, "text": ""})")).text, "");  // emptiness: the Recommender's
  const auto refused = [](const std::string& text) {
    try {
      (void)new_item_request(parse_object(text));
    } catch (const DataError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_NE(refused(R"({"text": "x"})").find("\"id\" is missing"), std::string::npos);
  EXPECT_NE(refused(R"({"id": 1.5, "text": "x"})").find("\"id\" must be an integer, got 1.5"), std::string::npos);
  EXPECT_NE(refused(R"({"id": "7", "text": "x"})").find("\"id\" must be an integer"), std::string::npos);
  EXPECT_NE(refused(R"({"id": 7})").find("\"text\" is missing"), std::string::npos);
  EXPECT_NE(refused(R"({"id": 7, "text": ["x"]})").find("\"text\" must be a string"), std::string::npos);
  EXPECT_NE(refused(R"({"id": 7, "text": null})").find("\"text\" must be a string"), std::string::npos);
}

}  // namespace
}  // namespace longrec::serve

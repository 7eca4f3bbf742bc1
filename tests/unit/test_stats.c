/* The stats JSON: amounts from cents, the average half-up, replies. */
#include <string.h>

#include "stats.h"
#include "tap.h"

static int
json_is(int64_t count, int64_t vat, int64_t total, const char *want)
{
	struct inv_stats st = { count, total - vat, vat, total, count };
	char buf[INV_STATS_JSON_MAX];

	inv_stats_json(&st, "redis", buf, sizeof(buf));
	if (strcmp(buf, want) != 0)
		printf("# got  %s\n# want %s\n", buf, want);
	return strcmp(buf, want) == 0;
}

static redisReply *
str(char *s)
{
	static redisReply r[8];
	static int n;
	redisReply *p = &r[n++ % 8];

	memset(p, 0, sizeof(*p));
	p->type = s != NULL ? REDIS_REPLY_STRING : REDIS_REPLY_NIL;
	p->str = s;
	p->len = s != NULL ? strlen(s) : 0;
	return p;
}

int
main(void)
{
	struct inv_stats st;
	redisReply *el[5], arr;

	ok(json_is(0, 0, 0, "{\"count\":0,\"total_amount\":0.00,"
	    "\"vat_amount\":0.00,\"average_amount\":0.00,\"source\":\"redis\"}"),
	    "no invoices: zeros, average 0.00");
	ok(json_is(3, 15, 100, "{\"count\":3,\"total_amount\":1.00,"
	    "\"vat_amount\":0.15,\"average_amount\":0.33,\"source\":\"redis\"}"),
	    "1.00 / 3 = 0.33 (down)");
	ok(json_is(3, 15, 200, "{\"count\":3,\"total_amount\":2.00,"
	    "\"vat_amount\":0.15,\"average_amount\":0.67,\"source\":\"redis\"}"),
	    "2.00 / 3 = 0.67 (up)");
	ok(json_is(2, 15, 101, "{\"count\":2,\"total_amount\":1.01,"
	    "\"vat_amount\":0.15,\"average_amount\":0.51,\"source\":\"redis\"}"),
	    "1.01 / 2 = 0.505 rounds half-up to 0.51");
	ok(json_is(1000000, 150000000000000LL, 1150000000000005LL,
	    "{\"count\":1000000,\"total_amount\":11500000000000.05,"
	    "\"vat_amount\":1500000000000.00,\"average_amount\":11500000.00,"
	    "\"source\":\"redis\"}"),
	    "sums past NUMERIC(12,2) stay exact");
	ok(json_is(4, 15, 1000000000000002LL,
	    "{\"count\":4,\"total_amount\":10000000000000.02,"
	    "\"vat_amount\":0.15,\"average_amount\":2500000000000.01,"
	    "\"source\":\"redis\"}"),
	    "average of a sum beyond 2^53 cents is exact (no double)");

	el[0] = str("5");
	el[1] = str("1000");
	el[2] = str("150");
	el[3] = str("1150");
	el[4] = str("42");
	memset(&arr, 0, sizeof(arr));
	arr.type = REDIS_REPLY_ARRAY;
	arr.elements = 5;
	arr.element = el;
	ok(inv_stats_reply(&arr, &st) == 0 && st.st_count == 5 &&
	    st.st_subtotal == 1000 && st.st_vat == 150 && st.st_total == 1150 &&
	    st.st_last_id == 42, "an HMGET reply parses");
	el[4] = str(NULL);
	ok(inv_stats_reply(&arr, &st) < 0, "a missing field is no statistics");
	el[4] = str("4x");
	ok(inv_stats_reply(&arr, &st) < 0, "a field that is not a number");
	el[4] = str("-1");
	ok(inv_stats_reply(&arr, &st) < 0, "a negative field");
	return tap_done();
}

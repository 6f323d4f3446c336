#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves that the official OpenAI Node SDK (npm package "openai") works against the data
# plane by changing only its base URL and key (docs/data-plane.md): chat.completions.create
# plain and streamed (iterating the stream, with and without include_usage),
# completions.create, embeddings.create (the SDK asks for base64 and decodes it),
# models.list; a revoked key makes the SDK throw its 403 PermissionDeniedError with code
# key_revoked, a wrong key its 401 AuthenticationError, and a flooded key (maxRetries 0)
# its 429 RateLimitError with code requests_per_second and a Retry-After; and the SDK's
# calls are metered exactly. The SDK is installed from the npm registry (npm's cache first)
# into the script's temporary directory; if node, npm or the package cannot be had, every
# case is skipped saying why.
. "$(dirname "$0")/lib.sh"

cases=("chat.completions.create answers the upstream's text and usage"
	"a streamed chat.completions.create iterates to the joined text, with the usage chunk when asked"
	"a streamed chat.completions.create without include_usage gets no usage chunk"
	"completions.create answers the upstream's text and usage"
	"embeddings.create decodes two 8-float embeddings"
	"models.list lists the configured models"
	"the SDK's calls are metered exactly"
	"a revoked key makes the SDK throw PermissionDeniedError (403, key_revoked)"
	"a wrong key makes the SDK throw AuthenticationError (401, invalid_api_key)"
	"a flooded key makes the SDK throw RateLimitError (429, requests_per_second, Retry-After)")
skip_all() { # WHY
	local c
	for c in "${cases[@]}"; do skip "$c" "$1"; done
	exit 0
}

command -v node >/dev/null || skip_all "node is not installed"
command -v npm >/dev/null || skip_all "npm is not installed"
mkdir -p "$tmp/sdk"
echo '{"name":"tollgate-sdk-test","private":true}' >"$tmp/sdk/package.json"
if ! (cd "$tmp/sdk" && timeout 240 npm install --prefer-offline --no-audit --no-fund --no-save --loglevel=error \
	--fetch-retries=1 --fetch-timeout=20000 \
	openai@6 >"$tmp/npm.log" 2>&1) || ! [ -f "$tmp/sdk/node_modules/openai/package.json" ]; then
	echo "# npm install openai@6 failed:"
	tail -n 5 "$tmp/npm.log" | sed 's/^/#   /'
	skip_all "the openai package could not be installed from the npm registry"
fi
echo "# openai SDK $(jq -r .version "$tmp/sdk/node_modules/openai/package.json"), node $(node --version)"

# sdk MODE KEY: runs one SDK call against the data plane; BODY gets its one-line JSON report.
cat >"$tmp/sdk/call.js" <<'EOF'
const { OpenAI } = require('openai');
const [mode, baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 10000 });
const chat = { model: 'gpt-4o-mini', max_tokens: 3,
	messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'hello world' }] };
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const err = (e) => ({ thrown: e.constructor.name, status: e.status ?? null, code: e.code ?? null,
	type: e.type ?? null, message: e.message, retryAfter: e.headers?.get?.('retry-after') ?? null });

async function main() {
	switch (mode) {
	case 'chat': {
		const r = await client.chat.completions.create(chat);
		return out({ content: r.choices[0].message.content, finish: r.choices[0].finish_reason, usage: r.usage });
	}
	case 'stream': case 'stream-no-usage': {
		const req = { ...chat, max_tokens: 5, stream: true };
		if (mode === 'stream') req.stream_options = { include_usage: true };
		const s = await client.chat.completions.create(req);
		let text = '', chunks = 0, usage = null, finish = null;
		for await (const c of s) {
			chunks++;
			if (c.usage) usage = c.usage;
			if (c.choices.length && c.choices[0].delta.content) text += c.choices[0].delta.content;
			if (c.choices.length && c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
		}
		return out({ text, chunks, usage, finish });
	}
	case 'completions': {
		const r = await client.completions.create({ model: 'gpt-3.5-turbo', prompt: 'Say this is a test', max_tokens: 7 });
		return out({ text: r.choices[0].text, usage: r.usage });
	}
	case 'embeddings': {
		const r = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['abc', 'hello world'] });
		return out({ n: r.data.length, dims: r.data.map((d) => d.embedding.length),
			numbers: r.data.every((d) => d.embedding.every((x) => typeof x === 'number' && isFinite(x))),
			usage: r.usage });
	}
	case 'models': {
		const ids = [];
		for await (const m of client.models.list()) ids.push(m.id);
		return out({ ids: ids.sort() });
	}
	case 'expect-error': {
		try {
			await client.chat.completions.create(chat);
			return out({ thrown: null });
		} catch (e) { return out(err(e)); }
	}
	case 'flood': {
		for (let i = 0; i < 60; i++) {
			try { await client.chat.completions.create({ ...chat, max_tokens: 1 }); }
			catch (e) { return out({ ...err(e), allowedBefore: i }); }
		}
		return out({ thrown: null });
	}
	}
	throw new Error('unknown mode ' + mode);
}
main().catch((e) => { out({ crashed: String(e && e.stack || e) }); process.exit(1); });
EOF
sdk() { # MODE KEY
	tg_last_request="openai SDK $1"
	STATUS="node exit $(
		timeout 30 node "$tmp/sdk/call.js" "$1" "$TG_DATA_URL/v1" "$2" >"$tmp/sdk.out" 2>"$tmp/ctl.err"
		echo $?
	)"
	BODY=$(cat "$tmp/sdk.out")
}

tg_start_mock || bail "mock-llm starts"
tg_start_gateway || bail "tollgated starts with its data plane in front of mock-llm"
DP_KEY=$(new_key '{"name":"sdk","owner":"team:sdk","service":"sdk","tier":"enterprise"}' | jq -r .key) ||
	bail "the admin creates an API key"

case_start "${cases[0]}"
sdk chat "$DP_KEY"
expect_status "node exit 0"
expect_json .content 'tok1 tok2 tok3'
expect_json .finish length
expect_jq '.usage == {"prompt_tokens":13,"completion_tokens":3,"total_tokens":16}'
case_end
metered gpt-4o-mini 13 3

case_start "${cases[1]}"
sdk stream "$DP_KEY"
expect_status "node exit 0"
expect_json .text 'tok1 tok2 tok3 tok4 tok5'
expect_json .chunks 7
expect_json .finish length
expect_jq '.usage == {"prompt_tokens":13,"completion_tokens":5,"total_tokens":18}'
case_end
metered gpt-4o-mini 13 5

case_start "${cases[2]}"
sdk stream-no-usage "$DP_KEY"
expect_status "node exit 0"
expect_json .text 'tok1 tok2 tok3 tok4 tok5'
expect_json .chunks 6
expect_json .usage null
case_end
metered gpt-4o-mini 13 5

case_start "${cases[3]}"
sdk completions "$DP_KEY"
expect_status "node exit 0"
expect_json .text 'tok1 tok2 tok3 tok4 tok5 tok6 tok7'
expect_jq '.usage == {"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}'
case_end
metered gpt-3.5-turbo 5 7

case_start "${cases[4]}"
sdk embeddings "$DP_KEY"
expect_status "node exit 0"
expect_json .n 2
expect_jq '.dims == [8,8] and .numbers == true'
expect_jq '.usage == {"prompt_tokens":4,"total_tokens":4}'
case_end
metered text-embedding-3-small 4 0

case_start "${cases[5]}"
sdk models "$DP_KEY"
expect_status "node exit 0"
expect_jq '.ids == ["gpt-3.5-turbo","gpt-4o","gpt-4o-mini","text-embedding-3-small"]'
case_end

case_start "${cases[6]}"
expect_metered sdk
case_end

revoked=$(new_key '{"name":"sdk-revoked","owner":"team:sdk","service":"sdk"}')
api DELETE "/api/v1/keys/$(jq -r .id <<<"$revoked")"
case_start "${cases[7]}"
sdk expect-error "$(jq -r .key <<<"$revoked")"
expect_status "node exit 0"
expect_json .thrown PermissionDeniedError
expect_json .status 403
expect_json .code key_revoked
case_end

case_start "${cases[8]}"
sdk expect-error "tg_zzzzzzzzzzzz_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
expect_status "node exit 0"
expect_json .thrown AuthenticationError
expect_json .status 401
expect_json .code invalid_api_key
case_end

flooded=$(new_key '{"name":"sdk-flooded","owner":"team:sdk","service":"sdk","limits":{"requests_per_second":1,"burst":5}}' | jq -r .key)
case_start "${cases[9]}"
sdk flood "$flooded"
expect_status "node exit 0"
expect_json .thrown RateLimitError
expect_json .status 429
expect_json .code requests_per_second
expect_json .type request_rate_limit_exceeded
expect_match .retryAfter '^[1-9][0-9]*$'
expect_jq '.allowedBefore >= 5'
case_end

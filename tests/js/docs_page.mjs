// Headless Chromium on the gateway's /docs page (GATEWAY_URL), offline: the page loads with no request
// leaving the gateway, lists the endpoints, and "Try it out" -> "Execute" on POST /v1/rerank returns a
// ranking. Prints one JSON line with what it saw; run by tests/http/test_docs_page.py.
import { chromium } from "playwright-core";

const H = process.env.GATEWAY_URL;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const seen = { requests: [], foreign: [], consoleErrors: [] };
try {
  const page = await browser.newPage();
  page.on("request", (request) => {
    seen.requests.push(request.url());
    if (!request.url().startsWith(H) && !request.url().startsWith("data:")) seen.foreign.push(request.url());
  });
  page.on("console", (message) => { if (message.type() === "error") seen.consoleErrors.push(message.text()); });
  await page.route((url) => !url.href.startsWith(H) && url.protocol !== "data:", (route) => route.abort());
  await page.goto(`${H}/docs`, { waitUntil: "networkidle" });
  seen.title = await page.title();
  await page.waitForSelector(".opblock", { timeout: 30000 });
  seen.operations = await page.$$eval(".opblock-summary", (nodes) =>
    nodes.map((n) => `${n.querySelector(".opblock-summary-method")?.textContent} ` +
                     `${n.querySelector(".opblock-summary-path")?.getAttribute("data-path")}`));
  const block = page.locator("#operations-rerank-rerank_v1");
  await block.locator(".opblock-summary").click();
  await block.locator("button.try-out__btn").click();
  await block.locator("button.execute").click();
  const body = block.locator(".live-responses-table .response-col_description pre.microlight").first();
  await body.waitFor({ timeout: 60000 });
  seen.status = (await block.locator(".live-responses-table tr.response .response-col_status").first().textContent()).trim();
  seen.response = JSON.parse(await body.textContent());
  await page.screenshot({ path: process.env.SCREENSHOT || "/tmp/rerank-gateway-docs.png", fullPage: false });
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));

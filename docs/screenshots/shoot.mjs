// Photographs the Aspire dashboard with Debian's Chromium (playwright-core drives it; no browser download):
//   node shoot.mjs <dashboard-url> <output-directory>
// 1. the resources page (every Helios role and its state), 2. the trace of the running export (the kick-off in the
// Api, then the plan and the partitions in the workers, one trace).
import { chromium } from 'playwright-core';

const [dashboard, out] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
  await page.goto(dashboard, { waitUntil: 'networkidle' });
  await page.getByText('helios-worker', { exact: false }).first().waitFor({ timeout: 60_000 });
  await page.waitForTimeout(1500);
  await page.screenshot({ path: `${out}/dashboard-resources.png` });
  console.log(`wrote ${out}/dashboard-resources.png`);

  await page.goto(`${dashboard}/traces`, { waitUntil: 'networkidle' });
  // The kick-off request's trace (its name is the route); a click on the row opens the trace's spans.
  const exportTrace = page.getByText('/$export', { exact: false }).first();
  await exportTrace.waitFor({ timeout: 60_000 });
  await exportTrace.click();
  await page.waitForURL(/\/traces\/detail\//, { timeout: 30_000 });
  await page.getByText('helios.export.plan', { exact: false }).first().waitFor({ timeout: 60_000 });
  // Fold the plan's database calls, so the partitions of the workers come into view.
  for (const stage of ['helios.export.plan']) {
    await page.locator('tr.fluent-data-grid-row', { hasText: stage }).first().locator('fluent-button.main-grid-expand-button').click();
    await page.waitForTimeout(500);
  }

  await page.getByText('helios.export.partition', { exact: false }).first().waitFor({ timeout: 30_000 });
  await page.setViewportSize({ width: 1600, height: 1300 });
  await page.waitForTimeout(1500);
  await page.screenshot({ path: `${out}/dashboard-trace.png` });
  console.log(`wrote ${out}/dashboard-trace.png`);
} finally {
  await browser.close();
}

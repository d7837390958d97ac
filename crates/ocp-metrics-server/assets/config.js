// OCP Metrics · what the Reporting page shows: endpoints, choices, metric names and colours, and
// the chart cards with their summaries. Data only; the endpoints' dimensions and downsamplings
// come from the catalog (GET /api/v1/catalog), not from here.
import { fmtDur, fmtInt, fmtNum, fmtPct, pctOrNull, ratio } from './format.js';

export const RT = '/metrics-api/v3/realtime/metrics/';
export const BATCH = '/metrics-api/v3/batch/metrics/';

export const RT_WINDOWS = [[20, '20 minutes'], [30, '30 minutes'], [60, '1 hour'], [120, '2 hours'],
  [240, '4 hours'], [360, '6 hours'], [720, '12 hours'], [1440, '24 hours'], [2880, '48 hours']];
export const INS_RANGES = [[7, 'Last 7 days'], [14, 'Last 14 days'], [30, 'Last 30 days'],
  [90, 'Last 90 days'], [180, 'Last 180 days'], [365, 'Last 365 days']];
export const DS_LABELS = { five_min: '5 minutes', hour: 'Hour', day: 'Day', week: 'Week', month: 'Month', year: 'Year' };
export const ZONES = ['UTC', 'America/New_York', 'America/Chicago', 'America/Los_Angeles', 'Europe/London',
  'Europe/Athens', 'Europe/Berlin', 'Asia/Kolkata', 'Asia/Kathmandu', 'Asia/Singapore', 'Asia/Tokyo',
  'Australia/Sydney', 'Australia/Lord_Howe'];

export const METRIC = {
  'session.initiated': ['Active sessions', '#2563eb'],
  dialogs_completed: ['Completed', '#2563eb'],
  dialogs_transferred: ['Transferred', '#f59e0b'],
  dialogs_terminated: ['Terminated', '#10b981'],
  root_system_errors: ['System errors', '#ef4444'],
  root_agent_requests: ['Agent requests', '#8b5cf6'],
  root_no_inputs: ['No-inputs', '#0ea5e9'],
  root_no_matches: ['No-matches', '#f97316'],
  root_critical_error: ['Critical errors', '#be123c'],
  miniapps_invocations: ['Invocations', '#2563eb'],
  miniapps_invocations_successful: ['Successful', '#10b981'],
  miniapps_system_errors: ['Errors', '#ef4444'],
  miniapps_no_inputs: ['No-inputs', '#0ea5e9'],
  miniapps_no_matches: ['No-matches', '#f97316'],
  sessions: ['Sessions', '#2563eb'],
  transferred: ['Transferred', '#f59e0b'],
  terminated: ['Terminated', '#10b981'],
  error: ['Error', '#ef4444'],
  other: ['Other', '#94a3b8'],
  successfultasks: ['Successful', '#10b981'],
  failedtasks: ['Failed', '#f59e0b'],
  errortasks: ['Error', '#ef4444'],
  hangeduptasks: ['Hung up', '#8b5cf6'],
  dtmfescapekeytasks: ['DTMF escape', '#0ea5e9'],
  othertasks: ['Other', '#94a3b8'],
};
export const PALETTE = ['#2563eb', '#10b981', '#f59e0b', '#ef4444', '#8b5cf6', '#0ea5e9', '#ec4899',
  '#84cc16', '#f97316', '#64748b', '#14b8a6', '#a855f7'];

// Derived (ratio) series, drawn as lines on their own right-hand axis.
export const DERIVED = {
  avg_duration: { label: 'Avg duration (s)', color: '#f59e0b', scale: 's', fn: (m, i) => ratio(m.duration10sec[i] * 10, m.sessions[i]) },
  avg_invocations: { label: 'Avg miniApps / session', color: '#8b5cf6', scale: 'ratio', fn: (m, i) => ratio(m.invocations[i], m.sessions[i]) },
  containment: { label: 'Containment rate (%)', color: '#0f172a', scale: '%', fn: (m, i) => pctOrNull(1 - m.transferred[i] / m.dialogs[i], m.dialogs[i]) },
  success_rate: { label: 'Success rate (%)', color: '#0f172a', scale: '%', fn: (m, i) => pctOrNull(m.successfultasks[i] / m.totalinvocations[i], m.totalinvocations[i]) },
};

// The chart cards. `plot` are the count series drawn; `metrics` are those requested.
export const CHARTS = [
  { id: 'rt-sessions', tab: 'rt', wide: true, path: RT + 'sessions', title: 'Sessions',
    sub: 'Active sessions per interval (a session counts in every interval it is active)',
    metrics: ['session.initiated'], area: true,
    summary: (t, s) => [['Peak', fmtInt(s.peak)], ['Latest', fmtInt(s.latest)], ['Average', fmtNum(s.avg)]] },
  { id: 'rt-dialogs', tab: 'rt', path: RT + 'dialogs', title: 'Dialogs', sub: 'Completed root dialogs and how they ended',
    metrics: ['dialogs_completed', 'dialogs_transferred', 'dialogs_terminated', 'root_system_errors'],
    summary: (t) => [['Completed', fmtInt(t.dialogs_completed)], ['Transfer rate', fmtPct(t.dialogs_transferred / t.dialogs_completed)],
      ['Error rate', fmtPct(t.root_system_errors / t.dialogs_completed)]] },
  { id: 'rt-dialog-friction', tab: 'rt', path: RT + 'dialogs', title: 'Dialog friction', sub: 'Agent requests, no-inputs, no-matches and critical errors in root dialogs',
    metrics: ['root_agent_requests', 'root_no_inputs', 'root_no_matches', 'root_critical_error'],
    summary: (t) => [['Agent requests', fmtInt(t.root_agent_requests)], ['No-inputs', fmtInt(t.root_no_inputs)], ['No-matches', fmtInt(t.root_no_matches)]] },
  { id: 'rt-miniapps', tab: 'rt', path: RT + 'miniapps', title: 'miniApp invocations', sub: 'Completed invocations, successful and with errors',
    metrics: ['miniapps_invocations', 'miniapps_invocations_successful', 'miniapps_system_errors'],
    summary: (t) => [['Invocations', fmtInt(t.miniapps_invocations)], ['Success rate', fmtPct(t.miniapps_invocations_successful / t.miniapps_invocations)],
      ['Error rate', fmtPct(t.miniapps_system_errors / t.miniapps_invocations)]] },
  { id: 'rt-miniapp-quality', tab: 'rt', path: RT + 'miniapps', title: 'miniApp no-inputs and no-matches', sub: 'Per-step recognition problems inside miniApps',
    metrics: ['miniapps_no_inputs', 'miniapps_no_matches'],
    summary: (t) => [['No-inputs', fmtInt(t.miniapps_no_inputs)], ['No-matches', fmtInt(t.miniapps_no_matches)]] },

  { id: 'ins-sessions', tab: 'ins', wide: true, path: BATCH + 'sessions', title: 'Total sessions',
    sub: 'Sessions per interval, average duration and average miniApp invocations per session',
    metrics: ['sessions', 'duration10sec', 'invocations'], plot: ['sessions'], bars: true, derived: ['avg_duration', 'avg_invocations'],
    summary: (t) => [['Sessions', fmtInt(t.sessions)], ['Avg duration', fmtDur(t.duration10sec * 10 / t.sessions)],
      ['Avg miniApps / session', fmtNum(t.invocations / t.sessions, 2)]] },
  { id: 'ins-outcome', tab: 'ins', path: BATCH + 'dialogs', title: 'Conversational outcome', sub: 'Dialogs by outcome; containment rate = 1 − transferred / dialogs',
    metrics: ['dialogs', 'transferred', 'terminated', 'error', 'other'], plot: ['transferred', 'terminated', 'error', 'other'],
    bars: true, stacked: true, derived: ['containment'],
    summary: (t) => [['Dialogs', fmtInt(t.dialogs)], ['Containment', fmtPct(1 - t.transferred / t.dialogs)], ['Error rate', fmtPct(t.error / t.dialogs)]] },
  { id: 'ins-miniapps', tab: 'ins', path: BATCH + 'miniapps', title: 'miniApp outcomes', sub: 'Invocations by result class',
    metrics: ['totalinvocations', 'successfultasks', 'failedtasks', 'errortasks', 'hangeduptasks', 'dtmfescapekeytasks', 'othertasks'],
    plot: ['successfultasks', 'failedtasks', 'errortasks', 'hangeduptasks', 'dtmfescapekeytasks', 'othertasks'],
    bars: true, stacked: true, derived: ['success_rate'],
    summary: (t) => [['Invocations', fmtInt(t.totalinvocations)], ['Success rate', fmtPct(t.successfultasks / t.totalinvocations)],
      ['Failed', fmtPct(t.failedtasks / t.totalinvocations)]] },
  { id: 'ins-peak', tab: 'ins', wide: true, path: BATCH + 'sessions', title: 'Peak hours', sub: 'Sessions by hour of day over the last 7 days (selected time zone)',
    metrics: ['sessions'], bars: true, peak: true,
    summary: (t, s) => [['Busiest hour', s.peakHour], ['Quietest hour', s.lowHour], ['Sessions', fmtInt(t.sessions)]] },
];

export const KPIS = {
  rt: [['rt-sessions', 'Latest', 'Active sessions (latest interval)'], ['rt-dialogs', 'Completed', 'Dialogs completed'],
    ['rt-dialogs', 'Transfer rate', 'Transfer rate'], ['rt-miniapps', 'Success rate', 'miniApp success rate']],
  ins: [['ins-sessions', 'Sessions', 'Total sessions'], ['ins-sessions', 'Avg duration', 'Avg session duration'],
    ['ins-sessions', 'Avg miniApps / session', 'Avg miniApps per session'], ['ins-outcome', 'Containment', 'Containment rate'],
    ['ins-miniapps', 'Success rate', 'miniApp success rate']],
};
export const metricLabel = (m) => (METRIC[m] ? METRIC[m][0] : m);
export const metricColor = (m, i) => (METRIC[m] ? METRIC[m][1] : PALETTE[i % PALETTE.length]);

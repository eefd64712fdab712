"""Drives the approval console in Debian's headless Chromium (selenium + chromedriver; nothing
downloads a browser). One scenario per run; prints one JSON line with what it saw.

usage: console_browser.py SCENARIO LINK SHOTS_DIR [ARGS...]
  allow KEY=VALUE...         fill static slots, screenshot at 1280 and 390 px, click Allow
  half KEY=VALUE...          fill only some slots, click Allow (the page must refuse), then Deny
  deny                       click Deny
  confirm KEY                the agent's value: masked, revealed by the toggle, then Allow
  paste KEY TOKEN_URL CLIENT_ID CLIENT_SECRET REFRESH_TOKEN
  connect KEY PRESET AUTH_URL TOKEN_URL CLIENT_ID CLIENT_SECRET MAP_HOST MAP_TO
  credential ID PRESET AUTH_URL CLIENT_ID CLIENT_SECRET MAP_HOST MAP_TO   (an oauth2 credential's Connect page)
"""

import json
import os
import shutil
import sys
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait


def browser(profile, extra=()):
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1280,1100",
        *extra,
    ]:
        o.add_argument(a)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    d.set_page_load_timeout(30)
    return d


def wait_for(d, css):
    return WebDriverWait(d, 15).until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))


def click_and_wait(d, element):
    """Clicks something that navigates and waits until the new document has loaded (a marker set
    on the old document's window is gone: staleness checks race with Chromium's DOM teardown)."""
    d.execute_script("window.__aivaultOld = 1")
    element.click()

    def loaded(drv):
        try:
            return drv.execute_script("return window.__aivaultOld === undefined && document.readyState === 'complete'")
        except Exception:
            return False

    WebDriverWait(d, 20).until(loaded)


def shots(d, shots_dir, name):
    os.makedirs(shots_dir, exist_ok=True)
    d.set_window_size(1280, 1100)
    d.save_screenshot(os.path.join(shots_dir, f"{name}-1280.png"))
    d.set_window_size(390, 1400)
    width = d.execute_script("return document.documentElement.scrollWidth")
    d.save_screenshot(os.path.join(shots_dir, f"{name}-390.png"))
    d.set_window_size(1280, 1100)
    return width


def open_page(d, link, scenario):
    d.get(link)
    wait_for(d, "form[id^=connect-]" if scenario == "credential" else "form#decide")
    return d.current_url


def outcome(d):
    h1 = wait_for(d, "h1").text
    return {"h1": h1, "url": d.current_url, "html": d.page_source}


def fill(d, pairs):
    for pair in pairs:
        key, value = pair.split("=", 1)
        d.find_element(By.NAME, f"value:{key}").send_keys(value)


def main():
    scenario, link, shots_dir, *args = sys.argv[1:]
    extra = []
    if scenario == "connect":
        extra = [f"--host-resolver-rules=MAP {args[6]} {args[7]}", "--ignore-certificate-errors"]
    if scenario == "credential":
        extra = [f"--host-resolver-rules=MAP {args[5]} {args[6]}", "--ignore-certificate-errors"]
    # The profile lives only as long as this run: every run used to leave one in /tmp.
    profile = tempfile.mkdtemp(prefix="aivault-chromium-")
    try:
        d = browser(profile, extra)
    except BaseException:
        shutil.rmtree(profile, ignore_errors=True)
        raise
    out = {"scenario": scenario}
    try:
        out["page_url"] = open_page(d, link, scenario)
        out["title"] = d.title
        if scenario == "allow":
            fill(d, args)
            out["width_390"] = shots(d, shots_dir, "approval-page")
            click_and_wait(d, d.find_element(By.ID, "allow"))
            out.update(outcome(d))
        elif scenario == "half":
            fill(d, args)
            click_and_wait(d, d.find_element(By.ID, "allow"))
            out["refused"] = wait_for(d, "p.error").text
            out["refused_html"] = d.page_source
            click_and_wait(d, d.find_element(By.ID, "deny"))
            out.update(outcome(d))
        elif scenario == "deny":
            click_and_wait(d, d.find_element(By.ID, "deny"))
            out.update(outcome(d))
        elif scenario == "confirm":
            field = d.find_element(By.NAME, f"value:{args[0]}")
            out["masked"] = field.get_attribute("type") == "password"
            d.find_element(By.CSS_SELECTOR, f"button[data-reveal='v-{args[0]}']").click()
            out["revealed"] = field.get_attribute("type") == "text"
            out["shown_value"] = field.get_attribute("value")
            shots(d, shots_dir, "agent-value")
            click_and_wait(d, d.find_element(By.ID, "allow"))
            out.update(outcome(d))
        elif scenario == "paste":
            key, token_url, client_id, client_secret, refresh = args
            form = d.find_element(By.ID, f"paste-{key}")
            tu = form.find_element(By.NAME, "token_url")
            tu.clear()
            tu.send_keys(token_url)
            form.find_element(By.NAME, "client_id").send_keys(client_id)
            form.find_element(By.NAME, "client_secret").send_keys(client_secret)
            form.find_element(By.NAME, "refresh_token").send_keys(refresh)
            shots(d, shots_dir, "oauth-paste")
            click_and_wait(d, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
            out["notice"] = wait_for(d, "p.notice").text
            click_and_wait(d, d.find_element(By.ID, "allow"))
            out.update(outcome(d))
        elif scenario == "connect":
            key, preset, auth_url, token_url, client_id, client_secret = args[:6]
            form = d.find_element(By.ID, f"connect-{key}")
            chooser = form.find_element(By.NAME, "preset")
            chooser.send_keys(preset)
            d.execute_script("arguments[0].dispatchEvent(new Event('change'))", chooser)
            out["prefilled"] = {
                "authorization_url": form.find_element(By.NAME, "authorization_url").get_attribute("value"),
                "token_url": form.find_element(By.NAME, "token_url").get_attribute("value"),
                "client_auth": form.find_element(By.NAME, "client_auth").get_attribute("value"),
                "scopes": form.find_element(By.NAME, "scopes").get_attribute("value"),
            }
            shots(d, shots_dir, "oauth-connect")
            for name, value in [("authorization_url", auth_url), ("token_url", token_url)]:
                f = form.find_element(By.NAME, name)
                f.clear()
                f.send_keys(value)
            form.find_element(By.NAME, "client_id").send_keys(client_id)
            form.find_element(By.NAME, "client_secret").send_keys(client_secret)
            form.find_element(By.CSS_SELECTOR, "select[name=client_auth] option[value=basic]").click()
            click_and_wait(d, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
            click_and_wait(d, wait_for(d, "#continue"))
            out["connected"] = wait_for(d, "h1").text
            click_and_wait(d, d.find_element(By.LINK_TEXT, "Back to the proposal"))
            wait_for(d, "form#decide")
            out["connected_page"] = d.find_element(By.CSS_SELECTOR, "p.ok").text
            click_and_wait(d, d.find_element(By.ID, "allow"))
            out.update(outcome(d))
        elif scenario == "credential":
            cred, preset, auth_url, client_id, client_secret = args[:5]
            form = d.find_element(By.ID, f"connect-{cred}")
            token_before = form.find_element(By.NAME, "token_url").get_attribute("value")
            chooser = form.find_element(By.NAME, "preset")
            chooser.send_keys(preset)
            d.execute_script("arguments[0].dispatchEvent(new Event('change'))", chooser)
            out["prefilled"] = {
                "authorization_url": form.find_element(By.NAME, "authorization_url").get_attribute("value"),
                "token_url_kept": form.find_element(By.NAME, "token_url").get_attribute("value") == token_before,
            }
            shots(d, shots_dir, "credential-connect")
            f = form.find_element(By.NAME, "authorization_url")
            f.clear()
            f.send_keys(auth_url)
            form.find_element(By.NAME, "client_id").send_keys(client_id)
            form.find_element(By.NAME, "client_secret").send_keys(client_secret)
            form.find_element(By.CSS_SELECTOR, "select[name=client_auth] option[value=basic]").click()
            click_and_wait(d, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
            click_and_wait(d, wait_for(d, "#continue"))
            out.update(outcome(d))
            out["page_url"] = d.current_url
        else:
            raise SystemExit(f"unknown scenario {scenario}")
        # The page after the decision, reloaded: the session is gone with the decision.
        d.get(out["page_url"])
        out["after_html"] = d.page_source
    finally:
        d.quit()
        shutil.rmtree(profile, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
